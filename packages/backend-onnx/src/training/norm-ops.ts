import type { GraphBuilder } from "../export/graph-builder.js";

/** What a norm's backward pass needs: its input normalised (x̂) and 1/σ per row. */
export interface NormSaved {
  normalized: string;
  invStd: string;
}

/**
 * LayerNorm over the last axis of [tokens, hidden]: one LayerNormalization node, whose optional
 * Mean and InvStdDev outputs are kept for the backward pass.
 */
export function layerNormForward(g: GraphBuilder, scope: string, x: string, weight: string, bias: string, eps: number): { y: string; saved: NormSaved } {
  const [y, mean, invStd] = g.op(scope, "LayerNormalization", [x, weight, bias], { axis: -1, epsilon: eps }, 3);
  return { y: y!, saved: { normalized: g.one(scope, "Mul", [g.one(scope, "Sub", [x, mean!]), invStd!]), invStd: invStd! } };
}

/**
 * dx of LayerNorm for dy: with ĝ = dy·w, dx = (ĝ − mean(ĝ) − x̂·mean(ĝ·x̂))·(1/σ). The weight and
 * bias are frozen: no gradient for them.
 */
export function layerNormBackward(g: GraphBuilder, scope: string, saved: NormSaved, weight: string, dy: string): string {
  const s = `/grad${scope}`;
  const scaled = g.one(s, "Mul", [dy, weight]);
  const mean = g.one(s, "ReduceMean", [scaled], { axes: [-1], keepdims: 1 });
  const projection = g.one(s, "ReduceMean", [g.one(s, "Mul", [scaled, saved.normalized])], { axes: [-1], keepdims: 1 });
  const centred = g.one(s, "Sub", [g.one(s, "Sub", [scaled, mean]), g.one(s, "Mul", [saved.normalized, projection])]);
  return g.one(s, "Mul", [centred, saved.invStd]);
}

/**
 * RMSNorm (LLaMA) as ONNX ops, as transformers computes it: y = x·(1/√(mean(x²) + eps))·w. Returns
 * x̂ = x/rms and 1/rms for the backward pass.
 */
export function rmsNormForward(g: GraphBuilder, scope: string, x: string, weight: string, eps: number): { y: string; saved: NormSaved } {
  const meanSquare = g.one(scope, "ReduceMean", [g.one(scope, "Mul", [x, x])], { axes: [-1], keepdims: 1 });
  const invStd = g.one(scope, "Reciprocal", [g.one(scope, "Sqrt", [g.one(scope, "Add", [meanSquare, g.constFloat(eps)])])]);
  const normalized = g.one(scope, "Mul", [x, invStd]);
  return { y: g.one(scope, "Mul", [normalized, weight]), saved: { normalized, invStd } };
}

/** dx of RMSNorm: with ĝ = dy·w, dx = (ĝ − x̂·mean(ĝ·x̂))·(1/rms). */
export function rmsNormBackward(g: GraphBuilder, scope: string, saved: NormSaved, weight: string, dy: string): string {
  const s = `/grad${scope}`;
  const scaled = g.one(s, "Mul", [dy, weight]);
  const projection = g.one(s, "ReduceMean", [g.one(s, "Mul", [scaled, saved.normalized])], { axes: [-1], keepdims: 1 });
  return g.one(s, "Mul", [g.one(s, "Sub", [scaled, g.one(s, "Mul", [saved.normalized, projection])]), saved.invStd]);
}

/** Σ over the tokens of [tokens, hidden] → [hidden]. */
const sumTokens = (g: GraphBuilder, s: string, x: string): string => g.one(s, "ReduceSum", [x, g.constInts([0])], { keepdims: 0 });

/**
 * Full fine-tuning: LayerNorm's weight and bias gradients for dy, dγ = Σ_tokens dy·x̂ and
 * dβ = Σ_tokens dy (a sibling of `layerNormBackward`, which stays dx).
 */
export function layerNormParameterGradients(g: GraphBuilder, scope: string, saved: NormSaved, dy: string): { weight: string; bias: string } {
  const s = `/grad${scope}/weight`;
  return { weight: sumTokens(g, s, g.one(s, "Mul", [dy, saved.normalized])), bias: sumTokens(g, s, dy) };
}

/**
 * Full fine-tuning: RMSNorm's weight gradient Σ_tokens dy·x̂ — also for Gemma's stored w in
 * x̂·(1 + w), whose derivative by w is the same.
 */
export function rmsNormWeightGradient(g: GraphBuilder, scope: string, saved: NormSaved, dy: string): string {
  const s = `/grad${scope}/weight`;
  return sumTokens(g, s, g.one(s, "Mul", [dy, saved.normalized]));
}
