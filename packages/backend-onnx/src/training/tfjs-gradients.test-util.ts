/**
 * Test-only: the tfjs backend's causal-LM loss and gradients (LoRA factors, or every parameter) for a batch, the reference the
 * ONNX training graph is checked against. Labels are the unshifted ids with -100 on padding; the
 * loss is the mean over predicted positions of −log p(next token), as both trainers compute it.
 */
import * as tf from "@tensorflow/tfjs";
import type { TfjsModel } from "@lowrank/backend-tfjs";
import type { TrainableSet } from "@lowrank/backend-tfjs/internal";

export function tfjsLossAndGradients(
  model: TfjsModel,
  training: TrainableSet,
  ids: number[][],
  labels: number[][],
): { loss: number; grads: Map<string, Float32Array> } {
  const names = new Map([...training.variables].map(([key, v]) => [v.name, key]));
  const { value, grads } = tf.variableGrads(
    () =>
      tf.tidy(() => {
        const out = model.forward(
          { inputIds: tf.tensor2d(ids, undefined, "int32"), attentionMask: labels.map((r) => r.map((l) => (l < 0 ? 0 : 1))) },
          { training: true, seed: 0, dropoutCalls: 0 },
        );
        const [b, s, vocab] = out.logits.shape as [number, number, number];
        const logProbs = tf.logSoftmax(tf.slice(out.logits, [0, 0, 0], [b, s - 1, vocab]).reshape([-1, vocab]));
        const next = labels.flatMap((row) => row.slice(1));
        const weights = tf.tensor2d(
          next.map((l) => (l < 0 ? 0 : 1)),
          [next.length, 1],
        );
        const oneHot = tf.oneHot(
          next.map((l) => Math.max(l, 0)),
          vocab,
        );
        const picked = tf.sum(tf.mul(logProbs, tf.mul(oneHot.toFloat(), weights)));
        return tf.neg(tf.div(picked, tf.sum(weights))) as tf.Scalar;
      }),
    [...training.variables.values()],
  );
  const loss = value.dataSync()[0]!;
  const byKey = new Map(Object.entries(grads).map(([name, g]) => [names.get(name)!, g.dataSync() as Float32Array]));
  tf.dispose([value, ...Object.values(grads)]);
  return { loss, grads: byKey };
}
