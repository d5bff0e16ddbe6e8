import type { GraphBuilder } from "../export/graph-builder.js";

/** A module's LoRA factors as graph inputs: A [r, in], B [out, r], its scaling, an optional dropout mask. */
export interface LoraInputs {
  /** Graph input names (the adapter keys). */
  A: string;
  B: string;
  /** A float scalar tensor holding the module's scaling. */
  scaling: string;
  /** Graph input [tokens, in] of 0 or 1/(1−p), when lora_dropout > 0. */
  dropoutMask?: string;
  /** Graph output names of the gradients. */
  gradA: string;
  gradB: string;
  /** DoRA: the graph input of lora_magnitude_vector [out] and its gradient's output name. */
  magnitude?: string;
  gradMagnitude?: string;
  /** PEFT's lora_bias: the graph input of lora_B.bias [out] (added before the scaling) and its gradient's output name. */
  bias?: string;
  gradBias?: string;
}

/** A frozen linear map whose weight is an initializer, with LoRA on it or not. */
export interface FrozenLinear {
  scope: string;
  weight: string;
  bias?: string;
  /** "in_out": GPT-2's Conv1D [in, out]; "out_in": nn.Linear [out, in]. */
  layout: "in_out" | "out_in";
  lora?: LoraInputs;
}

/** What the backward pass of a linear needs from its forward pass. */
export interface LinearSaved {
  /** The input x (for the weight gradient of full fine-tuning). */
  x?: string;
  /** The LoRA branch's input after dropout, and x·Aᵀ·scaling. */
  dropped?: string;
  scaledDown?: string;
  /** DoRA: the factor m/‖W + scaling·B·A‖ [out], and x·W on the dropped input plus the scaled LoRA product (m's gradient is Σ dy ⊙ it / ‖…‖). */
  dora?: { factor: string; norm: string; directional: string };
}

/**
 * y = x·W (+ b) + scaling·(dropout(x)·Aᵀ·Bᵀ (+ b_B, PEFT's lora_bias)) on 2-D activations [tokens, in]. The frozen product is
 * one Gemm against the stored layout (transB for nn.Linear), so no transposed copy of the weight
 * exists; the LoRA product is added through Gemm's C input.
 */
export function linearForward(g: GraphBuilder, layer: FrozenLinear, x: string): { y: string; saved: LinearSaved } {
  const s = layer.scope;
  const base = g.one(s, "Gemm", layer.bias ? [x, layer.weight, layer.bias] : [x, layer.weight], layer.layout === "out_in" ? { transB: 1 } : {});
  const lora = layer.lora;
  if (!lora) return { y: base, saved: { x } };
  const dropped = lora.dropoutMask ? g.one(`${s}/lora_dropout`, "Mul", [x, lora.dropoutMask]) : x;
  const down = g.one(`${s}/lora_A`, "Gemm", [dropped, lora.A], { transB: 1 });
  const scaledDown = g.one(`${s}/lora_A`, "Mul", [down, lora.scaling]);
  if (lora.magnitude) return doraForward(g, layer, lora, { x, dropped, scaledDown, base });
  // lora_bias: lora_B is an nn.Linear with a bias, so scaling·(x·Aᵀ·Bᵀ + b_B).
  const c = lora.bias ? g.one(`${s}/lora_B`, "Add", [base, g.one(`${s}/lora_B`, "Mul", [lora.bias, lora.scaling])]) : base;
  const y = g.one(`${s}/lora_B`, "Gemm", [scaledDown, lora.B, c], { transB: 1 });
  return { y, saved: { x, dropped, scaledDown } };
}

/**
 * DoRA as PEFT computes it (and the tfjs trainer): with the factor f = m / ‖W + scaling·B·A‖ per
 * output feature, the norm detached (no gradient through it, as PEFT's `weight_norm.detach()`),
 * y = x·W + b + (f − 1)·(dropout(x)·W) + f·scaling·dropout(x)·Aᵀ·Bᵀ — without dropout f·(x·W + ΔW x) + b.
 * The norm is taken of W + scaling·B·A formed in the stored layout (an out × in product per module
 * and step, as PEFT forms it).
 */
function doraForward(
  g: GraphBuilder,
  layer: FrozenLinear,
  lora: LoraInputs,
  p: { x: string; dropped: string; scaledDown: string; base: string },
): { y: string; saved: LinearSaved } {
  const s = `${layer.scope}/dora`;
  const outIn = layer.layout === "out_in";
  const delta = outIn ? g.one(s, "Gemm", [lora.B, lora.A]) : g.one(s, "Gemm", [lora.A, lora.B], { transA: 1, transB: 1 });
  const combined = g.one(s, "Add", [layer.weight, g.one(s, "Mul", [delta, lora.scaling])]);
  const norm = g.one(s, "ReduceL2", [combined], { axes: [outIn ? 1 : 0], keepdims: 0 });
  const factor = g.one(s, "Div", [lora.magnitude!, norm]);
  const loraOut = g.one(`${layer.scope}/lora_B`, "Gemm", [p.scaledDown, lora.B], { transB: 1 });
  // x·W without the bias, on the dropped input (the same as the base product without dropout).
  const product = g.one(s, "Gemm", [p.dropped, layer.weight], outIn ? { transB: 1 } : {});
  const directional = g.one(s, "Add", [product, loraOut]);
  const y =
    p.dropped === p.x && !layer.bias
      ? g.one(s, "Mul", [directional, factor])
      : g.one(s, "Add", [
          g.one(s, "Add", [p.base, g.one(s, "Mul", [product, g.one(s, "Sub", [factor, g.constFloat(1)])])]),
          g.one(s, "Mul", [loraOut, factor]),
        ]);
  return { y, saved: { x: p.x, dropped: p.dropped, scaledDown: p.scaledDown, dora: { factor, norm, directional } } };
}

/**
 * The backward pass of `linearForward` for an output gradient dy [tokens, out]: adds the graph
 * outputs dA = (scaling·(dy·B))ᵀ·dropout(x) and dB = dyᵀ·(x·Aᵀ·scaling) when the layer has LoRA
 * (and d b_B = scaling·Σ_tokens dy with lora_bias), and
 * returns dx = dy·Wᵀ (+ the LoRA path). No gradient is formed for W or b: they are frozen. dy·Wᵀ is
 * a Gemm with transB on the stored [in, out] weight, or a MatMul on the stored [out, in] one.
 */
export function linearBackward(g: GraphBuilder, layer: FrozenLinear, saved: LinearSaved, dy: string): string {
  if (saved.dora) return doraBackward(g, layer, saved, dy);
  const s = `/grad${layer.scope}`;
  const base = layer.layout === "in_out" ? g.one(s, "Gemm", [dy, layer.weight], { transB: 1 }) : g.one(s, "MatMul", [dy, layer.weight]);
  const lora = layer.lora;
  if (!lora || !saved.dropped || !saved.scaledDown) return base;
  const gradB = g.one(`${s}/lora_B`, "Gemm", [dy, saved.scaledDown], { transA: 1 });
  const down = g.one(`${s}/lora_B`, "Mul", [g.one(`${s}/lora_B`, "MatMul", [dy, lora.B]), lora.scaling]);
  const gradA = g.one(`${s}/lora_A`, "Gemm", [down, saved.dropped], { transA: 1 });
  g.renameOutput(gradB, lora.gradB);
  g.renameOutput(gradA, lora.gradA);
  if (lora.bias && lora.gradBias)
    g.renameOutput(g.one(`${s}/lora_B`, "Mul", [g.one(`${s}/lora_B`, "ReduceSum", [dy, g.constInts([0])], { keepdims: 0 }), lora.scaling]), lora.gradBias);
  if (lora.dropoutMask)
    return g.one(`${s}/lora_A`, "Add", [base, g.one(`${s}/lora_dropout`, "Mul", [g.one(`${s}/lora_A`, "MatMul", [down, lora.A]), lora.dropoutMask])]);
  return g.one(`${s}/lora_A`, "Gemm", [down, lora.A, base]);
}

/**
 * The backward pass of DoRA's forward for dy [tokens, out], the norm held constant: dm = Σ_tokens dy ⊙
 * (dropout(x)·W + scaling·dropout(x)·Aᵀ·Bᵀ) / ‖W + scaling·B·A‖; A and B take plain LoRA's gradients
 * for dy ⊙ f; dx = dy·Wᵀ + dropout'((f − 1)·dy·Wᵀ) + the LoRA path for dy ⊙ f — without dropout
 * (dy ⊙ f)·Wᵀ + the LoRA path, i.e. linearBackward of dy ⊙ f.
 */
function doraBackward(g: GraphBuilder, layer: FrozenLinear, saved: LinearSaved, dy: string): string {
  const s = `/grad${layer.scope}/dora`;
  const lora = layer.lora!;
  const dora = saved.dora!;
  const summed = g.one(s, "ReduceSum", [g.one(s, "Mul", [dy, dora.directional]), g.constInts([0])], { keepdims: 0 });
  g.renameOutput(g.one(s, "Div", [summed, dora.norm]), lora.gradMagnitude!);
  const scaled = g.one(s, "Mul", [dy, dora.factor]);
  const dx = linearBackward(g, layer, { ...saved, dora: undefined }, scaled);
  if (!lora.dropoutMask) return dx;
  // With dropout the base product outside the factor saw x, not dropout(x): dx += (1 − mask) ⊙ ((dy − dy ⊙ f)·Wᵀ).
  const rest = g.one(s, "Sub", [dy, scaled]);
  const back = layer.layout === "in_out" ? g.one(s, "Gemm", [rest, layer.weight], { transB: 1 }) : g.one(s, "MatMul", [rest, layer.weight]);
  return g.one(s, "Add", [dx, g.one(s, "Sub", [back, g.one(s, "Mul", [back, lora.dropoutMask])])]);
}

/**
 * Full fine-tuning: the gradients of a linear's own weight and bias for an output gradient dy
 * [tokens, out], in the stored layouts — one Gemm with transA each way, so no transposed copy of x
 * or dy exists: dW = xᵀ·dy for GPT-2's Conv1D [in, out], dyᵀ·x for nn.Linear [out, in]; db = Σ_tokens dy.
 * A sibling of `linearBackward`, which stays the activation (and LoRA) gradient.
 */
export function linearParameterGradients(g: GraphBuilder, layer: FrozenLinear, saved: LinearSaved, dy: string): { weight: string; bias?: string } {
  const s = `/grad${layer.scope}/weight`;
  if (!saved.x) throw new Error(`${layer.scope}: the linear's forward pass kept no input`);
  const weight = layer.layout === "in_out" ? g.one(s, "Gemm", [saved.x, dy], { transA: 1 }) : g.one(s, "Gemm", [dy, saved.x], { transA: 1 });
  if (!layer.bias) return { weight };
  return { weight, bias: g.one(s, "ReduceSum", [dy, g.constInts([0])], { keepdims: 0 }) };
}
