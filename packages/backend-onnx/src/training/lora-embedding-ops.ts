import type { GraphBuilder } from "../export/graph-builder.js";
import type { LoraInputs } from "./lora-linear-ops.js";
import type { TrainingSlot } from "./lora-plan.js";

/** What the backward pass of an embedding's LoRA branch needs from its forward pass. */
export interface EmbeddingLoraSaved {
  /** The ids flattened to [tokens, 1], as ScatterND takes them. */
  rows: string;
  /** Aᵀ[ids]·scaling [tokens, r]. */
  scaledDown: string;
}

/**
 * PEFT's LoRA on an embedding (no dropout on this path, as in PEFT): for ids [batch, seq], the rows
 * of Aᵀ at the ids (A is lora_embedding_A [r, vocab]: a Gather on axis 1, then a [r, tokens]
 * Transpose — A itself is never transposed), times scaling, times Bᵀ (lora_embedding_B [dim, r]).
 * @returns the update [tokens, dim] to add to the table's rows.
 */
export function embeddingLoraForward(g: GraphBuilder, scope: string, lora: LoraInputs, ids: string): { y: string; saved: EmbeddingLoraSaved } {
  const s = `${scope}/lora_embedding_A`;
  const flat = g.one(s, "Reshape", [ids, g.constInts([-1])]);
  const down = g.one(s, "Transpose", [g.one(s, "Gather", [lora.A, flat], { axis: 1 })], { perm: [1, 0] });
  const scaledDown = g.one(s, "Mul", [down, lora.scaling]);
  const y = g.one(`${scope}/lora_embedding_B`, "Gemm", [scaledDown, lora.B], { transB: 1 });
  return { y, saved: { rows: g.one(s, "Reshape", [ids, g.constInts([-1, 1])]), scaledDown } };
}

/**
 * The gradients of `embeddingLoraForward`'s factors for the output gradient dy [tokens, dim], as
 * graph outputs: dB = dyᵀ·(Aᵀ[ids]·scaling), and dA = (Σ over each id's tokens of scaling·dy·B)ᵀ —
 * a ScatterND with reduction "add" into zeros [vocab, r] (repeated ids sum), then one [vocab, r]
 * Transpose. No input gradient: the ids are integers.
 */
export function embeddingLoraBackward(
  g: GraphBuilder,
  scope: string,
  lora: LoraInputs,
  p: { vocab: number; r: number },
  saved: EmbeddingLoraSaved,
  dy: string,
): void {
  const s = `/grad${scope}`;
  g.renameOutput(g.one(`${s}/lora_embedding_B`, "Gemm", [dy, saved.scaledDown], { transA: 1 }), lora.gradB);
  const dDown = g.one(`${s}/lora_embedding_A`, "Mul", [g.one(`${s}/lora_embedding_A`, "MatMul", [dy, lora.B]), lora.scaling]);
  const zeros = g.one(`${s}/lora_embedding_A`, "ConstantOfShape", [g.constInts([p.vocab, p.r])]);
  const scattered = g.one(`${s}/lora_embedding_A`, "ScatterND", [zeros, saved.rows, dDown], { reduction: "add" });
  g.renameOutput(g.one(`${s}/lora_embedding_A`, "Transpose", [scattered], { perm: [1, 0] }), lora.gradA);
}

/**
 * The LoRA branch of token embedding `module` when the run adapts it: its update [tokens, dim] for
 * `ids`, and the builder of its factors' gradients for the gradient dy of the embedding's output.
 */
export function tokenEmbeddingLora(
  g: GraphBuilder,
  p: { module: string; scope: string; slots: readonly TrainingSlot[]; lora: ReadonlyMap<string, LoraInputs>; ids: string },
): { y: string; backward: (dy: string) => void } | undefined {
  const slot = p.slots.find((s) => s.module === p.module);
  const lora = p.lora.get(p.module);
  if (!slot || !lora) return undefined;
  const { y, saved } = embeddingLoraForward(g, p.scope, lora, p.ids);
  return { y, backward: (dy) => embeddingLoraBackward(g, p.scope, lora, { vocab: slot.inFeatures, r: slot.r }, saved, dy) };
}
