import type { RelativePositionParams } from "@lowrank/core/internal";
import { relativeRowTables } from "../export/deberta-relative-position.js";
import { FLOAT32_MIN } from "../export/encoder-context.js";
import type { GraphBuilder } from "../export/graph-builder.js";
import { linearForward, type FrozenLinear, type LinearSaved } from "./lora-linear-ops.js";

const HEADS = [0, 2, 1, 3]; // [b, s, h, d] → [b, h, s, d] (and back)
const HEADS_T = [0, 2, 3, 1]; // [b, s, h, d] → [b, h, d, s]
const FROM_HEADS_T = [0, 3, 1, 2]; // [b, h, d, s] → [b, s, h, d]
const SWAP_LAST = [0, 1, 3, 2];

/** One layer's disentangled attention: its dims, scale, mask and the relative-position gathers of one forward pass. */
export interface DisentangledSpec {
  scope: string;
  heads: number;
  headDim: number;
  /** Dynamic dims as 1-D int64 tensors of one element. */
  batch: string;
  seq: string;
  /** √(d · (1 + number of position terms)): every score term is divided by it. */
  scale: number;
  /** bool [batch, 1, seq, seq]: query and key both real tokens (keepPairs). */
  keep: string;
  /** The relative-position table's rows (2·span), and each pair's row (relativeIndexes), when a position term is on. */
  rows?: number;
  c2pIndex?: string;
  p2cIndex?: string;
}

/** Hidden states projected [tokens, heads·d], and the position table projected [rows, heads·d] for the terms that use it. */
export interface DisentangledInputs {
  q: string;
  k: string;
  v: string;
  /** The table through the query projection (p2c) and through the key projection (c2p). */
  posQ?: string;
  posK?: string;
}

/** What the backward pass reads: q, k, v as [b, s, h, d], the softmax output and its masked copy, the projected tables. */
export interface DisentangledSaved {
  q3: string;
  k3: string;
  v3: string;
  probs: string;
  kept: string;
  posQ?: string;
  posK?: string;
}

/** XSoftmax's mask from the padding mask `attentionMask` (int64 [batch, seq]): query i and key j both real, bool [batch, 1, seq, seq]. */
export function keepPairs(g: GraphBuilder, attentionMask: string): string {
  const s = "/mask";
  const real = (axes: number[]) => g.one(s, "Cast", [g.one(s, "Unsqueeze", [attentionMask, g.constInts(axes)])], { to: 9 });
  return g.one(s, "And", [real([1, 3]), real([1, 2])]);
}

/** Table rows per (row, column) pair of a `seq`-token input, [batch, heads, seq, seq]. */
function pairIndex(g: GraphBuilder, scope: string, p: { batch: string; seq: string; heads: number }, distance: string, limit: number, rows: number[]): string {
  const clamped = g.one(scope, "Min", [g.one(scope, "Max", [distance, g.constInts([-limit])]), g.constInts([limit])]);
  const index = g.one(scope, "Gather", [g.ints(`lowrank::relative_rows_${scope.slice(1)}`, rows), g.one(scope, "Add", [clamped, g.constInts([limit])])]);
  return g.one(scope, "Expand", [index, g.one(scope, "Concat", [p.batch, g.constInts([p.heads]), p.seq, p.seq], { axis: 0 })]);
}

/**
 * The table row each pair gathers, shared by every layer: c2p's (rows: queries, columns: keys,
 * distance query − key) and p2c's before its transpose (rows: keys, columns: queries), from core's
 * log-bucket rule (relativeRowTables), int64 [batch, heads, seq, seq].
 */
export function relativeIndexes(
  g: GraphBuilder,
  p: { batch: string; seq: string; heads: number; params: RelativePositionParams; c2p: boolean; p2c: boolean },
): { c2pIndex?: string; p2cIndex?: string } {
  const s = "/relative_position";
  const scalar = (x: string) => g.one(s, "Squeeze", [x, g.constInts([0])]);
  const positions = g.one(s, "Range", [scalar(g.constInts([0])), scalar(p.seq), scalar(g.constInts([1]))]);
  // distance[i, j] = i − j.
  const distance = g.one(s, "Sub", [g.one(s, "Unsqueeze", [positions, g.constInts([1])]), g.one(s, "Unsqueeze", [positions, g.constInts([0])])]);
  const tables = relativeRowTables(p.params);
  return {
    c2pIndex: p.c2p ? pairIndex(g, `${s}/c2p`, p, distance, tables.limit, tables.c2p) : undefined,
    p2cIndex: p.p2c ? pairIndex(g, `${s}/p2c`, p, distance, tables.limit, tables.p2c) : undefined,
  };
}

/**
 * One linear over the hidden states [tokens, in] and the position table [rows, in] stacked (DeBERTa's
 * share_att_key): one Gemm, so a LoRA slot (or a merge) on the module acts on both, as PEFT's wrapped
 * layer does; its dropout mask, when it has one, covers the stacked rows. The backward pass is the
 * module's linearBackward of the stacked gradients (stackRows), split again (splitRows).
 */
export function stackedProjection(
  g: GraphBuilder,
  layer: FrozenLinear,
  x: string,
  table: string,
  rows: number,
): { x: string; pos: string; saved: LinearSaved } {
  const both = linearForward(g, layer, g.one(layer.scope, "Concat", [x, table], { axis: 0 }));
  return { ...splitRows(g, layer.scope, both.y, rows), saved: both.saved };
}

/** [tokens, ·] and [rows, ·] stacked along the rows. */
export const stackRows = (g: GraphBuilder, scope: string, x: string, pos: string): string => g.one(scope, "Concat", [x, pos], { axis: 0 });

/** The inverse of stackRows: the first rows and the last `rows`. */
export function splitRows(g: GraphBuilder, scope: string, both: string, rows: number): { x: string; pos: string } {
  return {
    x: g.one(scope, "Slice", [both, g.constInts([0]), g.constInts([-rows]), g.constInts([0])]),
    pos: g.one(scope, "Slice", [both, g.constInts([-rows]), g.constInts([2 ** 62]), g.constInts([0])]),
  };
}

/**
 * transformers' DisentangledSelfAttention (eager): content→content plus content→position (queries
 * against the key-projected table) and position→content (keys against the query-projected table),
 * each over the spec's scale, the position terms gathered at each pair's table row; XSoftmax over the
 * pairs of real tokens (masked scores filled with float32's minimum, softmax, then zeroed).
 * [tokens, heads·d] inputs → context [tokens, heads·d] (before attention.output.dense).
 */
export function disentangledForward(g: GraphBuilder, spec: DisentangledSpec, x: DisentangledInputs): { y: string; saved: DisentangledSaved } {
  const s = spec.scope;
  const { heads, headDim: d } = spec;
  const split = (t: string) => g.one(s, "Reshape", [t, g.one(s, "Concat", [spec.batch, spec.seq, g.constInts([heads, d])], { axis: 0 })]);
  const transpose = (t: string, perm: number[]) => g.one(s, "Transpose", [t], { perm });
  // A projected table [rows, heads·d] as [heads, d, rows].
  const tableT = (t: string) => transpose(g.one(s, "Reshape", [t, g.constInts([-1, heads, d])]), [1, 2, 0]);
  const scale = g.constFloat(spec.scale);
  const [q3, k3, v3] = [split(x.q), split(x.k), split(x.v)];
  const q4 = transpose(q3, HEADS);
  let scores = g.one(s, "Div", [g.one(s, "MatMul", [q4, transpose(k3, HEADS_T)]), scale]);
  const posK = spec.c2pIndex ? x.posK : undefined;
  const posQ = spec.p2cIndex ? x.posQ : undefined;
  if (spec.c2pIndex && posK) {
    const byRow = g.one(s, "MatMul", [q4, tableT(posK)]);
    scores = g.one(s, "Add", [scores, g.one(s, "Div", [g.one(s, "GatherElements", [byRow, spec.c2pIndex], { axis: 3 }), scale])]);
  }
  if (spec.p2cIndex && posQ) {
    const byRow = g.one(s, "MatMul", [transpose(k3, HEADS), tableT(posQ)]);
    const p2c = transpose(g.one(s, "GatherElements", [byRow, spec.p2cIndex], { axis: 3 }), SWAP_LAST);
    scores = g.one(s, "Add", [scores, g.one(s, "Div", [p2c, scale])]);
  }
  const probs = g.one(s, "Softmax", [g.one(s, "Where", [spec.keep, scores, g.constFloat(FLOAT32_MIN)])], { axis: -1 });
  const kept = g.one(s, "Where", [spec.keep, probs, g.constFloat(0)]);
  const context = g.one(s, "MatMul", [kept, transpose(v3, HEADS)]);
  const y = g.one(s, "Reshape", [transpose(context, HEADS), g.constInts([-1, heads * d])]);
  return { y, saved: { q3, k3, v3, probs, kept, posQ, posK } };
}

/**
 * The backward pass of disentangledForward for dy [tokens, heads·d]: dq, dk, dv [tokens, heads·d]
 * and the projected tables' gradients [rows, heads·d]. With dS the scores' gradient (the softmax's,
 * over the scale), a position term's gather is undone by a ScatterElements with reduction "add" into
 * zeros [batch, heads, seq, rows] (pairs at the same row sum), whose products with the table give dq
 * (c2p) or dk (p2c), and with q or k summed over the batch the table's gradient.
 */
export function disentangledBackward(
  g: GraphBuilder,
  spec: DisentangledSpec,
  saved: DisentangledSaved,
  dy: string,
): { dq: string; dk: string; dv: string; dPosQ?: string; dPosK?: string } {
  const s = `/grad${spec.scope}`;
  const { heads, headDim: d } = spec;
  const transpose = (t: string, perm: number[]) => g.one(s, "Transpose", [t], { perm });
  const flat = (t: string) => g.one(s, "Reshape", [t, g.constInts([-1, heads * d])]);
  const dy3 = g.one(s, "Reshape", [dy, g.one(s, "Concat", [spec.batch, spec.seq, g.constInts([heads, d])], { axis: 0 })]);
  const dKept = g.one(s, "MatMul", [transpose(dy3, HEADS), transpose(saved.v3, HEADS_T)]);
  const dv = flat(transpose(g.one(s, "MatMul", [transpose(dy3, HEADS_T), saved.kept]), FROM_HEADS_T));
  // Softmax backward on the kept pairs: P·(dP − Σ_j dP·P), then the scale every term shares.
  const dProbs = g.one(s, "Where", [spec.keep, dKept, g.constFloat(0)]);
  const rowDot = g.one(s, "ReduceSum", [g.one(s, "Mul", [dProbs, saved.probs]), g.constInts([-1])], { keepdims: 1 });
  const dScores = g.one(s, "Div", [g.one(s, "Mul", [saved.probs, g.one(s, "Sub", [dProbs, rowDot])]), g.constFloat(spec.scale)]);
  let dq4 = g.one(s, "MatMul", [dScores, transpose(saved.k3, HEADS)]);
  let dk3 = transpose(g.one(s, "MatMul", [transpose(saved.q3, HEADS_T), dScores]), FROM_HEADS_T);
  // A projected table [rows, heads·d] as [heads, rows, d]; x [b, s, h, d] as [h, d, b·s].
  const byHead = (t: string) => transpose(g.one(s, "Reshape", [t, g.constInts([-1, heads, d])]), [1, 0, 2]);
  const headsFirstT = (t: string) => g.one(s, "Reshape", [transpose(t, [2, 3, 0, 1]), g.constInts([heads, d, -1])]);
  const rows = spec.rows ?? 0;
  const zeros = () => g.one(s, "ConstantOfShape", [g.one(s, "Concat", [spec.batch, g.constInts([heads]), spec.seq, g.constInts([rows])], { axis: 0 })]);
  // dTableᵀ [h, d, rows] = Σ_b x[b, h]ᵀ · dByRow[b, h], as [rows, heads·d].
  const tableGradient = (x3: string, dByRow: string) => {
    const byRows = g.one(s, "Reshape", [transpose(dByRow, [1, 0, 2, 3]), g.constInts([heads, -1, rows])]);
    return flat(transpose(g.one(s, "MatMul", [headsFirstT(x3), byRows]), [2, 0, 1]));
  };
  let dPosK: string | undefined;
  let dPosQ: string | undefined;
  if (spec.c2pIndex && saved.posK) {
    const dByRow = g.one(s, "ScatterElements", [zeros(), spec.c2pIndex, dScores], { axis: 3, reduction: "add" });
    dq4 = g.one(s, "Add", [dq4, g.one(s, "MatMul", [dByRow, byHead(saved.posK)])]);
    dPosK = tableGradient(saved.q3, dByRow);
  }
  if (spec.p2cIndex && saved.posQ) {
    const dByRow = g.one(s, "ScatterElements", [zeros(), spec.p2cIndex, transpose(dScores, SWAP_LAST)], { axis: 3, reduction: "add" });
    dk3 = g.one(s, "Add", [dk3, transpose(g.one(s, "MatMul", [dByRow, byHead(saved.posQ)]), HEADS)]);
    dPosQ = tableGradient(saved.k3, dByRow);
  }
  return { dq: flat(transpose(dq4, HEADS)), dk: flat(dk3), dv, dPosQ, dPosK };
}
