import type { GraphBuilder } from "../export/graph-builder.js";

/** A transform of q or k in their [batch, seq, heads, headDim] layout (RoPE), with its backward. */
export interface HeadTransform {
  forward(g: GraphBuilder, scope: string, x: string): string;
  backward(g: GraphBuilder, scope: string, dy: string): string;
}

export interface AttentionSpec {
  scope: string;
  heads: number;
  kvHeads: number;
  headDim: number;
  /** Dynamic dims as 1-D int64 tensors of one element. */
  batch: string;
  seq: string;
  /** Additive mask broadcastable to [batch, heads, seq, seq] (0 where allowed, float32 min where not). */
  mask: string;
  scale: number;
  /** Gemma-2's attention-logit soft cap: scores → tanh(scores / cap)·cap before the mask. */
  softcap?: number;
  rope?: HeadTransform;
}

/**
 * Forward tensors the backward pass reads: q as [b, h, d, s], k as [b, h, s, d], vᵀ [b, h, d, s],
 * the probabilities, and with a soft cap tanh(scores / cap).
 */
export interface AttentionSaved {
  qT: string;
  k: string;
  vT: string;
  probs: string;
  capped?: string;
}

/*
 * Layouts: every product below is a plain MatMul or one whose second operand is transposed in its
 * last two axes. ONNX Runtime turns a Transpose of the last two axes feeding a MatMul into a fused
 * transA/transB kernel, and the transA kernel runs 5–10× slower on these batched shapes, so the
 * tensors a product needs as its first operand are made in that layout from [b, s, h, d] directly.
 */
const HEADS = [0, 2, 1, 3]; // [b, s, h, d] → [b, h, s, d] (and back)
const HEADS_T = [0, 2, 3, 1]; // [b, s, h, d] → [b, h, d, s]
const FROM_HEADS_T = [0, 3, 1, 2]; // [b, h, d, s] → [b, s, h, d]

function shape(g: GraphBuilder, scope: string, parts: (string | number[])[]): string {
  return g.one(
    scope,
    "Concat",
    parts.map((p) => (typeof p === "string" ? p : g.constInts(p))),
    { axis: 0 },
  );
}

/** Grouped-query attention: [b, kvHeads, m, n] → [b, heads, m, n], each kv head serving heads/kvHeads query heads. */
function repeatKv(g: GraphBuilder, spec: AttentionSpec, scope: string, x: string, inner: (string | number[])[]): string {
  const group = spec.heads / spec.kvHeads;
  if (group === 1) return x;
  const five = g.one(scope, "Reshape", [x, shape(g, scope, [spec.batch, [spec.kvHeads, 1], ...inner])]);
  const expanded = g.one(scope, "Expand", [five, shape(g, scope, [spec.batch, [spec.kvHeads, group], ...inner])]);
  return g.one(scope, "Reshape", [expanded, shape(g, scope, [spec.batch, [spec.heads], ...inner])]);
}

/** The backward of repeatKv: each group's gradients summed onto its kv head. */
function sumGroups(g: GraphBuilder, spec: AttentionSpec, scope: string, dx: string, inner: (string | number[])[]): string {
  const group = spec.heads / spec.kvHeads;
  if (group === 1) return dx;
  const grouped = g.one(scope, "Reshape", [dx, shape(g, scope, [spec.batch, [spec.kvHeads, group], ...inner])]);
  return g.one(scope, "ReduceSum", [grouped, g.constInts([2])], { keepdims: 0 });
}

/**
 * Causal scaled dot-product attention from q [tokens, heads·d], k and v [tokens, kvHeads·d] to
 * [tokens, heads·d], as transformers' eager path computes it: softmax(q·kᵀ·scale + mask)·v, the
 * scaled scores soft-capped first when the spec has a cap.
 */
export function attentionForward(g: GraphBuilder, spec: AttentionSpec, q: string, k: string, v: string): { y: string; saved: AttentionSaved } {
  const s = spec.scope;
  const d = [spec.headDim];
  const split = (x: string, heads: number) => g.one(s, "Reshape", [x, shape(g, s, [spec.batch, spec.seq, [heads, spec.headDim]])]);
  let q3 = split(q, spec.heads);
  let k3 = split(k, spec.kvHeads);
  const v3 = split(v, spec.kvHeads);
  if (spec.rope) {
    q3 = spec.rope.forward(g, `${s}/rope_q`, q3);
    k3 = spec.rope.forward(g, `${s}/rope_k`, k3);
  }
  const transpose = (x: string, perm: number[]) => g.one(s, "Transpose", [x], { perm });
  const kT = repeatKv(g, spec, s, transpose(k3, HEADS_T), [d, spec.seq]);
  const v4 = repeatKv(g, spec, s, transpose(v3, HEADS), [spec.seq, d]);
  let scores = g.one(s, "Mul", [g.one(s, "MatMul", [transpose(q3, HEADS), kT]), g.constFloat(spec.scale)]);
  let capped: string | undefined;
  if (spec.softcap !== undefined) {
    capped = g.one(s, "Tanh", [g.one(s, "Div", [scores, g.constFloat(spec.softcap)])]);
    scores = g.one(s, "Mul", [capped, g.constFloat(spec.softcap)]);
  }
  const probs = g.one(s, "Softmax", [g.one(s, "Add", [scores, spec.mask])], { axis: -1 });
  const y = g.one(s, "Reshape", [transpose(g.one(s, "MatMul", [probs, v4]), HEADS), g.constInts([-1, spec.heads * spec.headDim])]);
  return {
    y,
    saved: {
      qT: transpose(q3, HEADS_T),
      k: repeatKv(g, spec, s, transpose(k3, HEADS), [spec.seq, d]),
      vT: repeatKv(g, spec, s, transpose(v3, HEADS_T), [d, spec.seq]),
      probs,
      capped,
    },
  };
}

/** dq, dk, dv ([tokens, ·] like the forward inputs) for the output gradient dy [tokens, heads·d]. */
export function attentionBackward(g: GraphBuilder, spec: AttentionSpec, saved: AttentionSaved, dy: string): { dq: string; dk: string; dv: string } {
  const s = `/grad${spec.scope}`;
  const d = [spec.headDim];
  const transpose = (x: string, perm: number[]) => g.one(s, "Transpose", [x], { perm });
  const dy3 = g.one(s, "Reshape", [dy, shape(g, s, [spec.batch, spec.seq, [spec.heads, spec.headDim]])]);
  const dProbs = g.one(s, "MatMul", [transpose(dy3, HEADS), saved.vT]);
  const dvT = g.one(s, "MatMul", [transpose(dy3, HEADS_T), saved.probs]);
  // Softmax backward: P·(dP − Σ_j dP·P), then the soft cap's (1 − tanh²) and the score scaling.
  const rowDot = g.one(s, "ReduceSum", [g.one(s, "Mul", [dProbs, saved.probs]), g.constInts([-1])], { keepdims: 1 });
  let dCapped = g.one(s, "Mul", [saved.probs, g.one(s, "Sub", [dProbs, rowDot])]);
  if (saved.capped) dCapped = g.one(s, "Mul", [dCapped, g.one(s, "Sub", [g.constFloat(1), g.one(s, "Mul", [saved.capped, saved.capped])])]);
  const dScores = g.one(s, "Mul", [dCapped, g.constFloat(spec.scale)]);
  let dq3 = transpose(g.one(s, "MatMul", [dScores, saved.k]), HEADS);
  let dk3 = transpose(sumGroups(g, spec, s, g.one(s, "MatMul", [saved.qT, dScores]), [d, spec.seq]), FROM_HEADS_T);
  const dv3 = transpose(sumGroups(g, spec, s, dvT, [d, spec.seq]), FROM_HEADS_T);
  if (spec.rope) {
    dq3 = spec.rope.backward(g, `${s}/rope_q`, dq3);
    dk3 = spec.rope.backward(g, `${s}/rope_k`, dk3);
  }
  const flat = (x: string, heads: number) => g.one(s, "Reshape", [x, g.constInts([-1, heads * spec.headDim])]);
  return { dq: flat(dq3, spec.heads), dk: flat(dk3, spec.kvHeads), dv: flat(dv3, spec.kvHeads) };
}

/** What cached attention needs: AttentionSpec (its mask [batch, 1, seq, past + seq], cachedAttentionMask) and the layer's cache. */
export interface CachedAttentionSpec extends AttentionSpec {
  /** This layer's cache: past_key_values.N.key and .value [batch, kvHeads, past, headDim]. */
  pastKey: string;
  pastValue: string;
  /** The names the layer's present key and value get ([batch, kvHeads, past + seq, headDim]). */
  presentKey: string;
  presentValue: string;
}

/**
 * Attention of the new tokens over the cache and themselves, as transformers' eager path computes
 * it: softmax(q·kᵀ·scale (soft-capped) + mask)·v, with k and v the past followed by the new ones,
 * which become the present outputs. Grouped-query heads share their key/value head through a
 * reshape of q ([b, kvHeads, group·seq, d]), so the cache is never repeated per query head.
 */
export function cachedAttention(g: GraphBuilder, spec: CachedAttentionSpec, q: string, k: string, v: string): string {
  const s = spec.scope;
  const d = spec.headDim;
  const split = (x: string, heads: number) => g.one(s, "Reshape", [x, shape(g, s, [spec.batch, spec.seq, [heads, d]])]);
  let q3 = split(q, spec.heads);
  let k3 = split(k, spec.kvHeads);
  if (spec.rope) {
    q3 = spec.rope.forward(g, `${s}/rope_q`, q3);
    k3 = spec.rope.forward(g, `${s}/rope_k`, k3);
  }
  const transpose = (x: string, perm: number[]) => g.one(s, "Transpose", [x], { perm });
  const key = g.renameOutput(g.one(s, "Concat", [spec.pastKey, transpose(k3, HEADS)], { axis: 2 }), spec.presentKey);
  const value = g.renameOutput(g.one(s, "Concat", [spec.pastValue, transpose(split(v, spec.kvHeads), HEADS)], { axis: 2 }), spec.presentValue);
  const grouped = g.one(s, "Reshape", [transpose(q3, HEADS), g.constInts([0, spec.kvHeads, -1, d])]);
  let scores = g.one(s, "Mul", [g.one(s, "MatMul", [grouped, transpose(key, [0, 1, 3, 2])]), g.constFloat(spec.scale)]);
  if (spec.softcap !== undefined)
    scores = g.one(s, "Mul", [g.one(s, "Tanh", [g.one(s, "Div", [scores, g.constFloat(spec.softcap)])]), g.constFloat(spec.softcap)]);
  const masked = g.one(s, "Add", [g.one(s, "Reshape", [scores, g.constInts([0, spec.heads, -1, 0])]), spec.mask]);
  const probs = g.one(s, "Reshape", [g.one(s, "Softmax", [masked], { axis: -1 }), g.constInts([0, spec.kvHeads, -1, 0])]);
  const y = g.one(s, "Reshape", [g.one(s, "MatMul", [probs, value]), g.constInts([0, spec.heads, -1, d])]);
  return g.one(s, "Reshape", [transpose(y, HEADS), g.constInts([-1, spec.heads * d])]);
}

/**
 * The additive mask of cached attention, [batch, 1, seq, past + seq]: a new token at position
 * past + i sees key j when j ≤ past + i, the key is not padding (attention_mask), and — with a
 * sliding `window` — past + i − j < window; 0 where it sees, float32's minimum where not.
 */
export function cachedAttentionMask(g: GraphBuilder, params: { attentionMask: string; pastLength: string; seq: string; window?: number }): string {
  const s = `/mask${params.window === undefined ? "" : `_window_${params.window}`}`;
  const scalar = (x: string) => g.one(s, "Squeeze", [x, g.constInts([0])]);
  const total = g.one(s, "Add", [params.pastLength, params.seq]);
  const one = scalar(g.constInts([1]));
  const queries = g.one(s, "Range", [scalar(params.pastLength), scalar(total), one]);
  const keys = g.one(s, "Range", [scalar(g.constInts([0])), scalar(total), one]);
  const distance = g.one(s, "Sub", [g.one(s, "Unsqueeze", [queries, g.constInts([1])]), g.one(s, "Unsqueeze", [keys, g.constInts([0])])]);
  let allowed = g.one(s, "GreaterOrEqual", [distance, g.constInts([0])]);
  if (params.window !== undefined) allowed = g.one(s, "And", [allowed, g.one(s, "Less", [distance, g.constInts([params.window])])]);
  const real = g.one(s, "Cast", [g.one(s, "Unsqueeze", [params.attentionMask, g.constInts([1, 2])])], { to: 9 });
  return g.one(s, "Where", [g.one(s, "And", [allowed, real]), g.constFloat(0), g.constFloat(-3.4028234663852886e38)]);
}
