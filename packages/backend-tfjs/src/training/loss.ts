import * as tf from "@tensorflow/tfjs";

/**
 * Mean cross-entropy of logits [n, classes] against integer targets [n] over the rows where
 * `weights` is 1. The gradient (softmax − one-hot)·w/Σw is written by hand: it needs no gather
 * gradient (missing on wasm).
 */
export function crossEntropy(logits: tf.Tensor2D, targets: tf.Tensor1D, weights: tf.Tensor1D): tf.Scalar {
  const [, classes] = logits.shape;
  // Everything the gradient needs goes in as an input and is saved: closure-captured tensors would be
  // disposed before back-propagation runs. The one-hot rows [n, classes] are made where they are
  // used and freed at once (tidy): at GPT-2's vocabulary each is as large as the logits.
  const scaled = tf.div(weights, tf.maximum(tf.sum(weights), 1));
  const lossFn = tf.customGrad(((x: tf.Tensor2D, target: tf.Tensor1D, w: tf.Tensor1D, save: (tensors: tf.Tensor[]) => void) => {
    save([x, target, w]);
    return {
      value: tf.tidy(() => tf.sum(tf.mul(tf.sub(tf.logSumExp(x, 1), tf.sum(tf.mul(x, tf.oneHot(target, classes).toFloat()), 1)), w))) as tf.Scalar,
      gradFunc: (dy: tf.Tensor, saved: [tf.Tensor, tf.Tensor, tf.Tensor]) =>
        tf.tidy(() => {
          const [sx, st, sw] = saved;
          const grad = tf.mul(tf.mul(tf.sub(tf.softmax(sx), tf.oneHot(st as tf.Tensor1D, classes).toFloat()), sw.reshape([-1, 1])), dy);
          return [grad, tf.zerosLike(st), tf.zerosLike(sw)];
        }),
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return (lossFn as unknown as (...xs: tf.Tensor[]) => tf.Scalar)(logits, targets, scaled);
}

/**
 * Causal-LM loss: position t predicts token t+1; labels −100 (padding) are ignored, as in
 * transformers. logits [b, s, vocab], labels [b][s].
 */
export function causalLmLoss(logits: tf.Tensor, labels: number[][]): tf.Scalar {
  const [b, s, vocab] = logits.shape as [number, number, number];
  const targets: number[] = [];
  const weights: number[] = [];
  for (let i = 0; i < b; i++) {
    const row = labels[i]!;
    for (let t = 0; t < s - 1; t++) {
      const next = row[t + 1]!;
      targets.push(next < 0 ? 0 : next);
      weights.push(next < 0 ? 0 : 1);
    }
  }
  const shifted = tf.slice(logits, [0, 0, 0], [b, s - 1, vocab]).reshape([b * (s - 1), vocab]) as tf.Tensor2D;
  return crossEntropy(shifted, tf.tensor1d(targets, "int32"), tf.tensor1d(weights));
}

/** Sequence-classification loss: logits [b, labels] against class ids. */
export function classificationLoss(logits: tf.Tensor, labels: number[]): tf.Scalar {
  return crossEntropy(logits as tf.Tensor2D, tf.tensor1d(labels, "int32"), tf.ones([labels.length]) as tf.Tensor1D);
}
