import * as ort from "onnxruntime-node";
import type { KvLayout } from "@lowrank/backend-onnx/internal";

/** The cache inputs by name: past_key_values.N.key/value, [rows, kvHeads, past, headDim]. */
export type PastFeeds = Record<string, ort.Tensor>;

const int64 = (values: number[], dims: number[]) =>
  new ort.Tensor(
    "int64",
    BigInt64Array.from(values, (v) => BigInt(v)),
    dims,
  );

/**
 * The key/value cache of a running batch whose rows joined at different times: every row's cache
 * right-aligned in one [rows, kvHeads, width, headDim] tensor per layer and part, the columns before
 * a row's own tokens masked out (left padding, as transformers batches prompts). Rows join with the
 * cache of their prefill and leave when done; the columns no row uses are dropped.
 */
export class KvBatch {
  /** Tokens each row has in the cache (its prompt and the tokens fed back so far). */
  private lengths: number[] = [];
  private past: PastFeeds = {};
  private width = 0;

  constructor(private readonly layout: KvLayout) {}

  get size(): number {
    return this.lengths.length;
  }

  /** Adds a row from its own cache ([1, kvHeads, length, headDim] per layer and part); it becomes the last row. */
  add(rowPast: PastFeeds, length: number): void {
    const width = Math.max(this.width, length);
    const rows = this.size + 1;
    const next: PastFeeds = {};
    for (const name of this.names()) {
      const out = new Float32Array(rows * this.rowSize(width));
      if (this.size > 0) copyRows(this.past[name]!, out, width, this.layout, (r) => r);
      const own = rowPast[name]!;
      copyColumns(own.data as Float32Array, out, { row: rows - 1, fromWidth: length, toWidth: width, layout: this.layout });
      next[name] = new ort.Tensor("float32", out, [rows, this.layout.kvHeads, width, this.layout.headDim]);
    }
    this.past = next;
    this.width = width;
    this.lengths.push(length);
  }

  /** Keeps the rows at `keep` (in that order) and drops the columns no kept row reaches. */
  keep(keep: readonly number[]): void {
    const lengths = keep.map((r) => this.lengths[r]!);
    const width = Math.max(0, ...lengths);
    const next: PastFeeds = {};
    for (const name of this.names()) {
      const out = new Float32Array(keep.length * this.rowSize(width));
      if (keep.length > 0) copyRows(this.past[name]!, out, width, this.layout, (r) => keep[r]!);
      next[name] = new ort.Tensor("float32", out, [keep.length, this.layout.kvHeads, width, this.layout.headDim]);
    }
    this.past = next;
    this.width = width;
    this.lengths = lengths;
  }

  /**
   * The feeds of one decoding step: each row's next token after its own cache — attention over its
   * own columns and the new one, its position its length.
   */
  stepFeeds(tokens: readonly number[]): Record<string, ort.Tensor> {
    const rows = this.size;
    const feeds: Record<string, ort.Tensor> = { input_ids: int64([...tokens], [rows, 1]), ...this.past };
    if (this.layout.attentionMask) {
      const mask = this.lengths.flatMap((n) => [...Array<number>(this.width - n).fill(0), ...Array<number>(n + 1).fill(1)]);
      feeds.attention_mask = int64(mask, [rows, this.width + 1]);
    }
    if (this.layout.positionIds) feeds.position_ids = int64(this.lengths, [rows, 1]);
    return feeds;
  }

  /** Takes a step's `present.N.*` outputs as the cache: every row one token longer. */
  advance(outputs: Record<string, ort.Tensor>): void {
    for (const name of this.names()) this.past[name] = outputs[name.replace("past_key_values", "present")]!;
    this.width += 1;
    this.lengths = this.lengths.map((n) => n + 1);
  }

  private names(): string[] {
    return Array.from({ length: this.layout.layers }, (_, n) => [`past_key_values.${n}.key`, `past_key_values.${n}.value`]).flat();
  }

  private rowSize(width: number): number {
    return this.layout.kvHeads * width * this.layout.headDim;
  }
}

/** Row r of `out` ([rows, heads, width, dim]) from row source(r) of `from`, right-aligned (the last columns kept). */
function copyRows(from: ort.Tensor, out: Float32Array, width: number, layout: KvLayout, source: (r: number) => number): void {
  const fromWidth = from.dims[2]!;
  const data = from.data as Float32Array;
  const rows = out.length / (layout.kvHeads * width * layout.headDim);
  const fromRow = layout.kvHeads * fromWidth * layout.headDim;
  for (let r = 0; r < rows; r++) {
    const start = source(r) * fromRow;
    copyColumns(data.subarray(start, start + fromRow), out, { row: r, fromWidth, toWidth: width, layout });
  }
}

/**
 * One row's cache [heads, fromWidth, dim] into row `row` of out [rows, heads, toWidth, dim], aligned
 * on the right: the last min(fromWidth, toWidth) columns, zeros before them.
 */
function copyColumns(row: Float32Array, out: Float32Array, p: { row: number; fromWidth: number; toWidth: number; layout: KvLayout }): void {
  const { kvHeads, headDim } = p.layout;
  const columns = Math.min(p.fromWidth, p.toWidth);
  for (let h = 0; h < kvHeads; h++) {
    const src = (h * p.fromWidth + (p.fromWidth - columns)) * headDim;
    const dst = ((p.row * kvHeads + h) * p.toWidth + (p.toWidth - columns)) * headDim;
    out.set(row.subarray(src, src + columns * headDim), dst);
  }
}
