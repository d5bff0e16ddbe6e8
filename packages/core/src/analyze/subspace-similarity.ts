import type { LoraAdapter } from "../adapter/lora-adapter.js";
import { LowrankError } from "../errors/lowrank-error.js";
import { svdDecomposition } from "../math/linalg.js";
import { collectLoraModules, type LoraModule } from "../adapter/lora-modules.js";

function moduleOf(adapter: LoraAdapter, name: string, label: string): LoraModule {
  const m = collectLoraModules(adapter, label).modules.get(name);
  if (!m)
    throw new LowrankError("ADAPTER_INVALID", `subspaceSimilarity: ${label} has no LoRA module "${name}" (give the module path without "base_model.model.")`);
  return m;
}

/**
 * The normalised subspace similarity of the LoRA paper (Hu et al. 2021, section 7.2, Eq. 4)
 * between one module of two adapters:
 *
 *   φ(A₁, A₂, i, j) = ‖U_iᵀ·V_j‖²_F / min(i, j) ∈ [0, 1]
 *
 * where U_i holds the top-i right-singular vectors of adapter 1's lora_A (r₁ × d_in) and V_j the
 * top-j right-singular vectors of adapter 2's lora_A. As in the paper, the directions are those of
 * A alone, in the input space (d_in): the row space of A, which is the row space of ΔW = B·A when
 * B has full column rank. Their order comes from A's own singular values, not ΔW's; B and the
 * scaling play no part. For an embedding, lora_embedding_A's input space is the vocabulary.
 *
 * Returns the grid φ[i′−1][j′−1] for i′ = 1..i and j′ = 1..j (by default i = r₁ and j = r₂, the ranks).
 * φ(A, A, i, i) = 1 for every i.
 * @throws LowrankError ADAPTER_INVALID (module missing), SHAPE_MISMATCH (different input sizes),
 *   USAGE (i or j outside 1..r).
 */
export function subspaceSimilarity(first: LoraAdapter, second: LoraAdapter, module: string, options: { i?: number; j?: number } = {}): number[][] {
  const a = moduleOf(first, module, "the first adapter");
  const b = moduleOf(second, module, "the second adapter");
  if (a.inFeatures !== b.inFeatures) {
    throw new LowrankError(
      "SHAPE_MISMATCH",
      `subspaceSimilarity: module "${module}" has ${a.inFeatures} input features in the first adapter but ${b.inFeatures} in the second`,
    );
  }
  const d = a.inFeatures;
  const va = svdDecomposition(a.A, a.r, d);
  const vb = svdDecomposition(b.A, b.r, d);
  const maxI = options.i ?? va.k;
  const maxJ = options.j ?? vb.k;
  for (const [name, value, limit] of [
    ["i", maxI, va.k],
    ["j", maxJ, vb.k],
  ] as const) {
    if (!Number.isInteger(value) || value < 1 || value > limit) {
      throw new LowrankError("USAGE", `subspaceSimilarity: \`${name}\` is ${value}, expected an integer from 1 to ${limit}`);
    }
  }
  // Squared overlaps (u_pᵀ v_q)², then 2-D prefix sums: ‖U_iᵀ V_j‖²_F = Σ_{p<i, q<j} (u_pᵀ v_q)².
  const prefix = Array.from({ length: maxI + 1 }, () => new Float64Array(maxJ + 1));
  for (let p = 0; p < maxI; p++) {
    const above = prefix[p]!,
      row = prefix[p + 1]!;
    for (let q = 0; q < maxJ; q++) {
      let dot = 0;
      for (let x = 0; x < d; x++) dot += va.v[x * va.k + p]! * vb.v[x * vb.k + q]!;
      row[q + 1] = dot * dot + above[q + 1]! + row[q]! - above[q]!;
    }
  }
  return Array.from({ length: maxI }, (_, i) => Array.from({ length: maxJ }, (_, j) => prefix[i + 1]![j + 1]! / Math.min(i + 1, j + 1)));
}
