import type { LoraModule } from "../adapter/lora-modules.js";
import { denseTruncatedSvd, lowRankSvd, multiply, type Svd } from "../analyze/truncated-svd.js";
import { LowrankError } from "../errors/lowrank-error.js";
import type { CombinationType } from "./combine-plan.js";
import { mergeTasks, type MergeMethod, type MergeParams } from "./merge-utils.js";
import { svdFactors } from "./svd-factors.js";

/** One adapter's factors for a module, with its combination weight. */
export interface Contribution {
  module: LoraModule;
  weight: number;
  label: string;
}

export interface ModuleParams extends MergeParams {
  combination: CombinationType;
  newRank: number;
  svdClamp?: number;
}

/** Combined factors of one module, row-major float64: A [rank, in], B [out, rank]. */
export interface CombinedFactors {
  A: Float64Array;
  B: Float64Array;
  rank: number;
}

const METHOD: Readonly<Record<string, MergeMethod>> = {
  linear: "task_arithmetic",
  svd: "task_arithmetic",
  ties: "ties",
  ties_svd: "ties",
  dare_linear: "dare_linear",
  dare_linear_svd: "dare_linear",
  dare_ties: "dare_ties",
  dare_ties_svd: "dare_ties",
  magnitude_prune: "magnitude_prune",
  magnitude_prune_svd: "magnitude_prune",
};

const f64 = (x: Float32Array): Float64Array => Float64Array.from(x);

/**
 * cat (PEFT): lora_A stacks wᵢ·sᵢ·Aᵢ by rows, lora_B stacks Bᵢ by columns, zero-padded to the new
 * rank, so B·A = Σ wᵢ·sᵢ·Bᵢ·Aᵢ exactly.
 */
function concatenate(parts: readonly Contribution[], rank: number, out: number, inF: number): CombinedFactors {
  const A = new Float64Array(rank * inF);
  const B = new Float64Array(out * rank);
  let row = 0;
  for (const { module: m, weight } of parts) {
    const f = weight * m.scaling;
    for (let i = 0; i < m.A.length; i++) A[row * inF + i] = f * m.A[i]!;
    for (let o = 0; o < out; o++) for (let j = 0; j < m.r; j++) B[o * rank + row + j] = m.B[o * m.r + j]!;
    row += m.r;
  }
  return { A, B, rank };
}

/**
 * linear, ties, dare_*, magnitude_prune (PEFT's _generalized_task_arithmetic_weighted_adapter): the
 * A factors and the B factors are merged separately, A with sign(wᵢsᵢ)·√|wᵢsᵢ| and B with √|wᵢsᵢ|
 * (negative weights as in huggingface/peft#2811). For linear, B·A = (Σ √|wᵢsᵢ|·Bᵢ)(Σ ±√|wᵢsᵢ|·Aᵢ),
 * which has cross terms Bᵢ·Aⱼ: that is PEFT's formula, not Σ wᵢsᵢBᵢAᵢ.
 */
function mergeFactors(name: string, parts: readonly Contribution[], p: ModuleParams): CombinedFactors {
  const rank = parts[0]!.module.r;
  const odd = parts.find((c) => c.module.r !== rank);
  if (odd) {
    throw new LowrankError(
      "SHAPE_MISMATCH",
      `combineAdapters: module "${name}" has rank ${rank} in ${parts[0]!.label} but ${odd.module.r} in ${odd.label} (check \`rank_pattern\`); ` +
        `"${p.combination}" needs equal ranks, use "cat" or "svd"`,
    );
  }
  const magnitudes = parts.map((c) => Math.sqrt(Math.abs(c.weight * c.module.scaling)));
  const signs = parts.map((c) => (c.weight * c.module.scaling >= 0 ? 1 : -1));
  const method = METHOD[p.combination]!; // every combination but "cat" is listed
  const A = mergeTasks(
    method,
    parts.map((c) => f64(c.module.A)),
    magnitudes.map((m, i) => m * signs[i]!),
    p,
  );
  const B = mergeTasks(
    method,
    parts.map((c) => f64(c.module.B)),
    magnitudes,
    p,
  );
  return { A, B, rank };
}

/**
 * The *svd combinations (PEFT's _svd_generalized_task_arithmetic_weighted_adapter): PEFT merges
 * the deltas get_delta_weight(i) = sᵢ·Bᵢ·Aᵢ with weights wᵢ·sᵢ, so the scaling enters twice:
 * "svd" decomposes Σ wᵢ·sᵢ²·Bᵢ·Aᵢ. The SVD is taken in the B·A orientation (out × in): PEFT
 * transposes back for fan_in_fan_out and embeddings before its SVD, so the layout does not matter.
 * "svd" is a sum of low-rank products and is decomposed exactly through its small core; the pruned
 * variants are dense and go through the Gram matrix.
 */
function decompose(name: string, parts: readonly Contribution[], p: ModuleParams, out: number, inF: number): CombinedFactors {
  const k = p.newRank;
  if (k > Math.min(out, inF)) {
    throw new LowrankError("USAGE", `combineAdapters: the SVD rank ${k} exceeds module "${name}"'s smaller side (${out} × ${inF}); lower \`svdRank\``);
  }
  const weights = parts.map((c) => c.weight * c.module.scaling);
  let svd: Svd;
  if (p.combination === "svd") {
    const total = parts.reduce((a, c) => a + c.module.r, 0);
    const left = new Float64Array(out * total);
    const right = new Float64Array(total * inF);
    let col = 0;
    parts.forEach(({ module: m }, i) => {
      const f = weights[i]! * m.scaling;
      for (let o = 0; o < out; o++) for (let j = 0; j < m.r; j++) left[o * total + col + j] = f * m.B[o * m.r + j]!;
      right.set(m.A, col * inF);
      col += m.r;
    });
    svd = lowRankSvd(left, right, out, total, inF);
  } else {
    const deltas = parts.map(({ module: m }) =>
      multiply(
        Float64Array.from(m.B, (x) => x * m.scaling),
        m.A,
        out,
        m.r,
        inF,
      ),
    );
    svd = denseTruncatedSvd(mergeTasks(METHOD[p.combination]!, deltas, weights, p), out, inF, k);
  }
  return { ...svdFactors(svd, k, out, inF, p.svdClamp), rank: k };
}

/**
 * Combines one module's factors from the adapters that adapt it, by PEFT's rule for the combination.
 * @throws LowrankError SHAPE_MISMATCH (the adapters disagree on the module's shape, kind or rank),
 *   USAGE (an SVD rank larger than the module).
 */
export function combineModule(name: string, parts: readonly Contribution[], p: ModuleParams): CombinedFactors {
  const first = parts[0]!.module;
  for (const { module: m, label } of parts) {
    if (m.inFeatures !== first.inFeatures || m.outFeatures !== first.outFeatures || m.embedding !== first.embedding) {
      throw new LowrankError(
        "SHAPE_MISMATCH",
        `combineAdapters: module "${name}" is ${first.embedding ? "an embedding " : ""}${first.outFeatures} × ${first.inFeatures} in ` +
          `${parts[0]!.label} but ${m.embedding ? "an embedding " : ""}${m.outFeatures} × ${m.inFeatures} in ${label}; were they trained on the same ` +
          `base model?`,
      );
    }
  }
  if (p.combination === "cat") return concatenate(parts, p.newRank, first.outFeatures, first.inFeatures);
  if (p.combination.endsWith("svd")) return decompose(name, parts, p, first.outFeatures, first.inFeatures);
  return mergeFactors(name, parts, p);
}
