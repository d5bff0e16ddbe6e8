import * as tf from "@tensorflow/tfjs";
import { relativePosition, type RelativePositionParams } from "@lowrank/core/internal";

/**
 * The table row for each distance a sequence of `seq` tokens has, clamp(position + span, 0, 2·span − 1),
 * in the two orders the attention terms need: `descending` lists distances s−1, s−2, …, −(s−1)
 * (content→position), `ascending` the reverse (position→content). 2s − 1 rows each.
 */
export function relativeTableRows(seq: number, params: RelativePositionParams): { descending: number[]; ascending: number[] } {
  const row = (d: number) => Math.min(Math.max(relativePosition(d, params) + params.span, 0), 2 * params.span - 1);
  const ascending = Array.from({ length: 2 * seq - 1 }, (_, c) => row(c - (seq - 1)));
  return { ascending, descending: [...ascending].reverse() };
}

/**
 * x [n, s, 2s−1] → y [n, s, s] with y[a, b] = x[a, s−1−a+b]: the per-row shift that turns scores
 * against each distance into scores against each key (or query). Done with pad, reshape and slice,
 * which have gradients on every backend (gather has none on wasm).
 */
export function skewToPairs(x: tf.Tensor3D): tf.Tensor3D {
  const [n, s, width] = x.shape;
  if (width !== 2 * s - 1) throw new Error(`skewToPairs: expected ${2 * s - 1} distances for ${s} positions, got ${width}`);
  const flat = tf
    .pad(x, [
      [0, 0],
      [0, 0],
      [0, 1],
    ])
    .reshape([n, s * 2 * s]);
  const shifted = tf.slice(flat, [0, s - 1], [n, s * (2 * s - 1)]).reshape([n, s, 2 * s - 1]);
  return tf.slice(shifted, [0, 0, 0], [n, s, s]) as tf.Tensor3D;
}

/**
 * DeBERTa's attention mask (transformers' get_attention_mask and XSoftmax): query i may attend to
 * key j only when both are real tokens, so a padded query row keeps nothing. Returns 1/0 values
 * [b, s, s]; undefined mask = all real.
 */
export function pairMask(mask: number[][] | undefined, batch: number, seq: number): Float32Array {
  const keep = new Float32Array(batch * seq * seq);
  for (let b = 0; b < batch; b++) {
    for (let i = 0; i < seq; i++) {
      for (let j = 0; j < seq; j++) {
        keep[(b * seq + i) * seq + j] = !mask || (mask[b]![i] !== 0 && mask[b]![j] !== 0) ? 1 : 0;
      }
    }
  }
  return keep;
}
