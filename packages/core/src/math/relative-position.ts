const f32 = Math.fround;

/** How DeBERTa-v2 turns a query − key distance into a row of the relative-position table. */
export interface RelativePositionParams {
  /** `position_buckets` (≤ 0: no log buckets). */
  buckets: number;
  /** `max_relative_positions`, with values < 1 replaced by `max_position_embeddings`. */
  maxPosition: number;
  /** transformers' att_span: `position_buckets` when > 0, else maxPosition. The table has 2·span rows. */
  span: number;
}

/**
 * transformers' make_log_bucket_position for one distance d = query − key: |d| ≤ buckets/2 is kept;
 * longer distances become sign(d)·(mid + ⌈log(|d|/mid) / log((maxPosition − 1)/mid) · (mid − 1)⌉)
 * with mid = buckets/2, each step rounded to float32 as PyTorch computes it.
 */
export function logBucketPosition(distance: number, buckets: number, maxPosition: number): number {
  const mid = Math.floor(buckets / 2);
  const abs = Math.abs(distance);
  if (abs <= mid) return distance;
  const ratio = f32(f32(Math.log(f32(abs / mid))) / f32(Math.log(f32((maxPosition - 1) / mid))));
  return Math.sign(distance) * (Math.ceil(f32(ratio * (mid - 1))) + mid);
}

/** transformers' build_relative_position for one distance: log-bucketed when buckets and maxPosition are set. */
export function relativePosition(distance: number, params: RelativePositionParams): number {
  return params.buckets > 0 && params.maxPosition > 0 ? logBucketPosition(distance, params.buckets, params.maxPosition) : distance;
}
