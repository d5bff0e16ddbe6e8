import * as tf from "@tensorflow/tfjs";

/** LayerNorm over the last axis: (x − mean)/√(var + eps)·w + b. */
export function layerNorm(x: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor | undefined, eps: number): tf.Tensor {
  const { mean, variance } = tf.moments(x, -1, true);
  const normed = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps)));
  const scaled = tf.mul(normed, weight);
  return bias ? tf.add(scaled, bias) : scaled;
}

/** RMSNorm (LLaMA): x/√(mean(x²) + eps)·w. */
export function rmsNorm(x: tf.Tensor, weight: tf.Tensor, eps: number): tf.Tensor {
  const ms = tf.mean(tf.square(x), -1, true);
  return tf.mul(tf.mul(x, tf.rsqrt(tf.add(ms, eps))), weight);
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/** The activations transformers names in configs. */
export function activation(name: string, x: tf.Tensor): tf.Tensor {
  switch (name) {
    case "gelu_new":
    case "gelu_pytorch_tanh":
    case "gelu_fast": {
      // 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
      const inner = tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), SQRT_2_OVER_PI);
      return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), 1));
    }
    case "gelu":
      // exact: 0.5·x·(1 + erf(x/√2))
      return tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1));
    case "silu":
    case "swish":
      return tf.mul(x, tf.sigmoid(x));
    case "relu":
      return tf.relu(x);
    case "tanh":
      return tf.tanh(x);
    default:
      throw new Error(`activation "${name}" is not supported`);
  }
}

/** Smallest float32, which transformers adds to masked attention scores. */
export const MASK_VALUE = -3.4028234663852886e38;

/**
 * Scaled dot-product attention. q [b, h, s, d], k and v [b, h, t, d], `bias` broadcastable to
 * [b, h, s, t] (0 where allowed, MASK_VALUE where not).
 */
export function attention(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, bias: tf.Tensor | undefined, scale: number): tf.Tensor4D {
  let scores = tf.mul(tf.matMul(q, k, false, true), scale);
  if (bias) scores = tf.add(scores, bias);
  return tf.matMul(tf.softmax(scores, -1), v) as tf.Tensor4D;
}

/** [b, s, h·d] → [b, h, s, d]. */
export function splitHeads(x: tf.Tensor, heads: number, headDim: number): tf.Tensor4D {
  const [b, s] = x.shape;
  return tf.transpose(x.reshape([b!, s!, heads, headDim]), [0, 2, 1, 3]) as tf.Tensor4D;
}

/** [b, h, s, d] → [b, s, h·d]. */
export function mergeHeads(x: tf.Tensor4D): tf.Tensor3D {
  const [b, h, s, d] = x.shape;
  return tf.transpose(x, [0, 2, 1, 3]).reshape([b, s, h * d]) as tf.Tensor3D;
}

/**
 * Additive attention bias [b, 1, s, t] from a key padding mask [b, t] (1 = real token) and,
 * for causal models, the causal triangle (query i sees keys ≤ offset + i) — within `window` keys of
 * the query when a sliding window is set (core's attentionWindow). Computed on the CPU: no gradient
 * flows through it.
 */
export function attentionBias(params: {
  batch: number;
  queries: number;
  keys: number;
  causal: boolean;
  offset?: number;
  mask?: number[][];
  window?: number;
  /** Packed sequences: a query sees only keys of its own segment (queries and keys the same tokens, no cache). */
  segments?: number[][];
}): tf.Tensor4D {
  const { batch, queries, keys, causal } = params;
  const offset = params.offset ?? keys - queries;
  const data = new Float32Array(batch * queries * keys);
  for (let b = 0; b < batch; b++) {
    for (let i = 0; i < queries; i++) {
      for (let j = 0; j < keys; j++) {
        const outsideWindow = params.window !== undefined && j <= offset + i - params.window;
        const otherSegment = params.segments !== undefined && params.segments[b]![j] !== params.segments[b]![offset + i];
        const blocked = (causal && j > offset + i) || outsideWindow || otherSegment || (params.mask !== undefined && params.mask[b]![j] === 0);
        if (blocked) data[(b * queries + i) * keys + j] = MASK_VALUE;
      }
    }
  }
  return tf.tensor4d(data, [batch, 1, queries, keys]);
}

/** Identity whose gradient is zero (tfjs has no stopGradient op). */
export const stopGradient = tf.customGrad(((x: tf.Tensor) => ({
  value: x.clone(),
  gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy),
})) as unknown as Parameters<typeof tf.customGrad>[0]) as (x: tf.Tensor) => tf.Tensor;
