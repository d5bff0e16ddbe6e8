import * as tf from "@tensorflow/tfjs";
import { MASK_VALUE } from "../layers/functional.js";
import type { LinearLayer } from "../layers/linear-layer.js";
import type { ForwardContext } from "../layers/lora-branch.js";
import { skewToPairs } from "./deberta-relative-position.js";

type GradFn = Parameters<typeof tf.customGrad>[0];

/**
 * Above this many multiply-adds per batch entry, one 2-D product per entry beats tfjs's batched
 * kernel on wasm, where only 2-D products reach the fast kernel (forward + backward measured here:
 * 4 × [1024, 64]·[64, 255] 73 ms against 333 ms; 96 × [128, 64]·[64, 128] 1470 ms against 289 ms).
 */
const PER_ENTRY_MIN_WORK = 4_000_000;

function multiply(a: tf.Tensor3D, b: tf.Tensor3D): tf.Tensor3D {
  const [n, m, k] = a.shape;
  const p = b.shape[2];
  if (m * k * p < PER_ENTRY_MIN_WORK) return tf.matMul(a, b);
  const bs = tf.split(b, n, 0);
  return tf.concat(
    tf.split(a, n, 0).map((x, i) => tf.matMul(x.reshape([m, k]) as tf.Tensor2D, bs[i]!.reshape([k, p]) as tf.Tensor2D).reshape([1, m, p])),
    0,
  ) as tf.Tensor3D;
}

/**
 * Batched a·b [n, m, k]·[n, k, p] → [n, m, p] whose gradient transposes explicitly: tfjs's own
 * BatchMatMul gradient uses the transposeA/B flags, 10–30× slower on wasm (see layers/mat-mul.ts).
 */
const batchMatMul = tf.customGrad(((a: tf.Tensor3D, b: tf.Tensor3D, save: (t: tf.Tensor[]) => void) => {
  save([a, b]);
  const swap = (t: tf.Tensor3D) => tf.transpose(t, [0, 2, 1]) as tf.Tensor3D;
  return { value: multiply(a, b), gradFunc: (dy: tf.Tensor3D, [sa, sb]: [tf.Tensor3D, tf.Tensor3D]) => [multiply(dy, swap(sb)), multiply(swap(sa), dy)] };
}) as unknown as GradFn) as unknown as (a: tf.Tensor3D, b: tf.Tensor3D) => tf.Tensor3D;

/** One DeBERTa-v2 self-attention's projections (pos* only when share_att_key is false). */
export interface DisentangledProjections {
  query: LinearLayer;
  key: LinearLayer;
  value: LinearLayer;
  posQuery?: LinearLayer;
  posKey?: LinearLayer;
}

/** What every layer of one forward pass shares. */
export interface DisentangledInputs {
  heads: number;
  headDim: number;
  /** √(head_dim · (1 + number of c2p/p2c terms)). */
  scale: number;
  /** Normalised position-table rows for distances s−1 … −(s−1) [2s−1, hidden], when c2p is on. */
  c2pRows?: tf.Tensor2D;
  /** The same for distances −(s−1) … s−1, when p2c is on. */
  p2cRows?: tf.Tensor2D;
  /** 1 where query and key are both real, [b, s, s] (see pairMask). */
  keep: tf.Tensor3D;
  ctx: ForwardContext;
}

/**
 * XSoftmax: softmax over the allowed keys, then zero where not allowed — a padded query row gets
 * all-zero probabilities. scores [..., b, s, s], keep [b, s, s] of 1/0.
 */
export function maskedSoftmax(scores: tf.Tensor, keep: tf.Tensor): tf.Tensor {
  const blocked = tf.mul(tf.sub(1, keep), MASK_VALUE);
  return tf.mul(tf.softmax(tf.add(scores, blocked), -1), keep);
}

/** A per-distance position table [2s−1, h·d] projected by `layer`, as [h, d, 2s−1]. */
function positionKeys(layer: LinearLayer, rows: tf.Tensor2D, inputs: DisentangledInputs): tf.Tensor3D {
  const projected = layer.apply(rows, inputs.ctx);
  return tf.transpose(projected.reshape([rows.shape[0], inputs.heads, inputs.headDim]), [1, 2, 0]) as tf.Tensor3D;
}

/**
 * transformers' DisentangledSelfAttention (DeBERTa-v2/v3), eager path: content→content plus
 * content→position (query against the key-projected position table) and position→content (key
 * against the query-projected table), each over √(d·factor), XSoftmax, then the values.
 * hidden [b, s, hidden] → context [b, s, h·d] (before attention.output.dense).
 *
 * Scores are laid out [h·b, s, s]; the position terms use one row per distance (2s − 1 of them)
 * and skewToPairs, so the model never gathers with an index tensor.
 */
export function disentangledAttention(hidden: tf.Tensor3D, layers: DisentangledProjections, inputs: DisentangledInputs): tf.Tensor3D {
  const [b, s] = hidden.shape;
  const { heads: h, headDim: d, ctx } = inputs;
  const byHead = (x: tf.Tensor) => tf.transpose(x.reshape([b, s, h, d]), [2, 0, 1, 3]); // [h, b, s, d]
  const q = byHead(layers.query.apply(hidden, ctx));
  const keys = layers.key.apply(hidden, ctx);
  const v = byHead(layers.value.apply(hidden, ctx)).reshape([h * b, s, d]) as tf.Tensor3D;
  const keysT = tf.transpose(keys.reshape([b, s, h, d]), [2, 0, 3, 1]).reshape([h * b, d, s]) as tf.Tensor3D;
  let scores: tf.Tensor3D = batchMatMul(q.reshape([h * b, s, d]) as tf.Tensor3D, keysT);
  if (inputs.c2pRows) {
    const posKey = positionKeys(layers.posKey ?? layers.key, inputs.c2pRows, inputs);
    const byDistance = batchMatMul(q.reshape([h, b * s, d]) as tf.Tensor3D, posKey).reshape([h * b, s, 2 * s - 1]) as tf.Tensor3D;
    scores = tf.add(scores, skewToPairs(byDistance));
  }
  if (inputs.p2cRows) {
    const posQuery = positionKeys(layers.posQuery ?? layers.query, inputs.p2cRows, inputs);
    const k = byHead(keys).reshape([h, b * s, d]) as tf.Tensor3D;
    const byDistance = batchMatMul(k, posQuery).reshape([h * b, s, 2 * s - 1]) as tf.Tensor3D;
    // Rows are keys here: transpose to [query, key].
    scores = tf.add(scores, tf.transpose(skewToPairs(byDistance), [0, 2, 1]));
  }
  const probs = maskedSoftmax(tf.mul(scores, 1 / inputs.scale).reshape([h, b, s, s]), inputs.keep);
  const context = batchMatMul(probs.reshape([h * b, s, s]) as tf.Tensor3D, v);
  return tf.transpose(context.reshape([h, b, s, d]), [1, 2, 0, 3]).reshape([b, s, h * d]) as tf.Tensor3D;
}
