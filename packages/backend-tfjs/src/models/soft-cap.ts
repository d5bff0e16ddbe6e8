import * as tf from "@tensorflow/tfjs";

/** Gemma-2's soft cap: tanh(x / cap)·cap. */
export function softCap(x: tf.Tensor, cap: number): tf.Tensor {
  return tf.mul(tf.tanh(tf.div(x, cap)), cap);
}

/**
 * Scaled dot-product attention with the scores soft-capped before the additive `bias` (Gemma-2's
 * eager attention). q [b, h, s, d], k and v [b, h, t, d], `bias` broadcastable to [b, h, s, t].
 */
export function softCappedAttention(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, bias: tf.Tensor | undefined, scale: number, cap: number): tf.Tensor4D {
  let scores = softCap(tf.mul(tf.matMul(q, k, false, true), scale), cap);
  if (bias) scores = tf.add(scores, bias);
  return tf.matMul(tf.softmax(scores, -1), v) as tf.Tensor4D;
}
