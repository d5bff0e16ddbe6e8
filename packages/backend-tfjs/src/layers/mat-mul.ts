import * as tf from "@tensorflow/tfjs";

/*
 * On the wasm backend a matMul with transposeA or transposeB runs 10–30× slower than a plain one
 * (measured here: [1024, 384]·[8192, 384]ᵀ takes 2.8 s against 0.23 s for the pre-transposed
 * product), and tfjs's own matMul gradient uses both flags. These products transpose explicitly
 * instead, forward and backward.
 */

type GradFn = Parameters<typeof tf.customGrad>[0];

const productOfTwo = tf.customGrad(((a: tf.Tensor2D, b: tf.Tensor2D, save: (t: tf.Tensor[]) => void) => {
  save([a, b]);
  return {
    value: tf.matMul(a, b),
    // tidy: tfjs runs a custom gradient outside the backward pass's own tidy, so the transposes
    // would otherwise live until the whole backward pass ends.
    gradFunc: (dy: tf.Tensor2D, [sa, sb]: [tf.Tensor2D, tf.Tensor2D]) => tf.tidy(() => [tf.matMul(dy, tf.transpose(sb)), tf.matMul(tf.transpose(sa), dy)]),
  };
}) as unknown as GradFn) as unknown as (a: tf.Tensor2D, b: tf.Tensor2D) => tf.Tensor2D;

/** a·b with gradients for both, never using the slow transposed kernels. */
export function matMul(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  return productOfTwo(a, b);
}

/**
 * x·w for a frozen weight, given both orientations: `forward` [in, out] and `backward` [out, in]
 * (= forwardᵀ), the latter made only when the gradient is (a transposed copy made during the
 * backward pass lives only while it is used). Only x gets a gradient (dy·backward), so nothing is
 * spent on the weight's.
 */
export function frozenMatMul(x: tf.Tensor2D, forward: tf.Tensor2D, backward: () => tf.Tensor2D): tf.Tensor2D {
  const op = tf.customGrad(((input: tf.Tensor2D) => ({
    value: tf.matMul(input, forward),
    gradFunc: (dy: tf.Tensor2D) => tf.tidy(() => tf.matMul(dy, backward())),
  })) as unknown as GradFn) as unknown as (input: tf.Tensor2D) => tf.Tensor2D;
  return op(x);
}
