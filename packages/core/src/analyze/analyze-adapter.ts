import type { LoraAdapter } from "../adapter/lora-adapter.js";
import { LowrankError } from "../errors/lowrank-error.js";
import { toFloat32, type Tensor } from "../formats/safetensors/dtype.js";
import { collectLoraModules, type LoraModule } from "../adapter/lora-modules.js";
import { lowRankSvd } from "./truncated-svd.js";

/** Where base weights come from: a `Checkpoint` (or anything with `has` and `readFloat32`), or a map of tensors. */
export type BaseWeights = { has(key: string): boolean; readFloat32(key: string): Promise<Float32Array> } | ReadonlyMap<string, Tensor>;

export interface AnalyzeOptions {
  /** The base model's weights; when given, each module reports ‖ΔW‖_F / ‖W‖_F. */
  base?: BaseWeights;
  /** Energy fractions for the effective ranks, each in (0, 1]. Default [0.9, 0.99]. */
  energies?: number[];
}

/** The spectrum of one module's LoRA update (Hu et al. 2021, section 7). */
export interface ModuleAnalysis {
  /** Module path in the base model ("transformer.h.0.attn.c_attn"), without PEFT's "base_model.model.". */
  name: string;
  kind: "linear" | "embedding";
  r: number;
  inFeatures: number;
  outFeatures: number;
  /** Shape of the base weight as stored: [out, in], or [in, out] for fan_in_fan_out (Conv1D) and embeddings. */
  weightShape: [number, number];
  scaling: number;
  /** DoRA module: the spectrum is that of scaling·B·A only; DoRA's magnitude rescaling is not included. */
  dora: boolean;
  /** Singular values of ΔW = scaling·B·A, descending, exactly r of them (zeros when min(in, out) < r). */
  singularValues: number[];
  /** For each requested energy e: the smallest k with σ₁² + … + σ_k² ≥ e·Σσ² (0 for a zero update). */
  effectiveRanks: { energy: number; rank: number }[];
  /** ‖ΔW‖_F = √Σσ². */
  deltaNorm: number;
  /** ‖ΔW‖_F / ‖W‖_F, when base weights were given (for DoRA, ΔW is scaling·B·A as above). */
  relativeNorm?: number;
}

/** Smallest k with σ₁² + … + σ_k² ≥ energy·Σσ² (singular values descending); 0 when all are zero. */
export function effectiveRank(singularValues: readonly number[], energy: number): number {
  const squares = singularValues.map((s) => s * s);
  const total = squares.reduce((a, b) => a + b, 0);
  if (total === 0) return 0;
  const goal = energy * total * (1 - 1e-12); // forgive the rounding of the sums at energy 1
  let sum = 0;
  for (let k = 0; k < squares.length; k++) {
    sum += squares[k]!;
    if (sum >= goal) return k + 1;
  }
  return squares.length;
}

/** Exactly r singular values of scaling·B·A, by the low-rank route (QR of B and Aᵀ, SVD of the r × r core). */
export function loraSingularValues(m: Pick<LoraModule, "A" | "B" | "r" | "inFeatures" | "outFeatures" | "scaling">): number[] {
  const left = Float64Array.from(m.B, (x) => x * m.scaling);
  const { s } = lowRankSvd(left, m.A, m.outFeatures, m.r, m.inFeatures);
  return Array.from({ length: m.r }, (_, i) => (i < s.length ? s[i]! : 0));
}

/** transformers' base-model prefixes: a bare checkpoint ("h.0.attn.c_attn.weight") lacks them. */
const BASE_MODEL_PREFIXES = ["transformer.", "model.", "roberta.", "bert.", "deberta.", "gpt_neox.", "encoder."];

async function readBaseWeight(base: BaseWeights, m: LoraModule, label: string): Promise<Float32Array> {
  const candidates = [m.name, ...BASE_MODEL_PREFIXES.flatMap((p) => (m.name.startsWith(p) ? [m.name.slice(p.length)] : [p + m.name]))];
  const key = candidates.map((c) => `${c}.weight`).find((k) => base.has(k));
  if (key === undefined)
    throw new LowrankError("ADAPTER_INVALID", `${label}: the base has no weight "${m.name}.weight" for module "${m.name}"; is it the adapter's base model?`);
  const weight = "readFloat32" in base ? await base.readFloat32(key) : toFloat32((base as ReadonlyMap<string, Tensor>).get(key)!, key);
  if (weight.length !== m.inFeatures * m.outFeatures) {
    throw new LowrankError(
      "SHAPE_MISMATCH",
      `${label}: base weight "${key}" has ${weight.length} values but module "${m.name}" is ${m.outFeatures} × ${m.inFeatures}`,
    );
  }
  return weight;
}

/**
 * Analyses every LoRA module of an adapter as in section 7 of the LoRA paper: the singular values
 * of the scaled update ΔW = scaling·B·A (exact, through the r × r core, never forming ΔW), the
 * effective rank at each energy, and with base weights the relative size ‖ΔW‖_F / ‖W‖_F.
 * Singular values do not change under transposition, so fan_in_fan_out and embeddings (whose
 * stored delta is (B·A)ᵀ) only change `weightShape`.
 * @throws LowrankError USAGE (an energy outside (0, 1]), ADAPTER_INVALID / SHAPE_MISMATCH (bad
 *   factors, or base weights that do not fit).
 * @example
 * const report = await analyzeAdapter(await readAdapter("out/adapter"), { energies: [0.9] });
 * console.log(report.map(summarizeModule).join("\n"));
 */
export async function analyzeAdapter(adapter: LoraAdapter, options: AnalyzeOptions = {}): Promise<ModuleAnalysis[]> {
  const energies = options.energies ?? [0.9, 0.99];
  for (const e of energies) {
    if (!(e > 0 && e <= 1)) throw new LowrankError("USAGE", `analyzeAdapter: energy ${e} is not in (0, 1]; give fractions such as 0.9`);
  }
  const label = "analyzeAdapter";
  const { modules } = collectLoraModules(adapter, label);
  const results: ModuleAnalysis[] = [];
  for (const m of modules.values()) {
    const singularValues = loraSingularValues(m);
    const deltaNorm = Math.sqrt(singularValues.reduce((a, s) => a + s * s, 0));
    const transposedLayout = m.embedding || adapter.config.fan_in_fan_out;
    const analysis: ModuleAnalysis = {
      name: m.name,
      kind: m.embedding ? "embedding" : "linear",
      r: m.r,
      inFeatures: m.inFeatures,
      outFeatures: m.outFeatures,
      weightShape: transposedLayout ? [m.inFeatures, m.outFeatures] : [m.outFeatures, m.inFeatures],
      scaling: m.scaling,
      dora: m.magnitude !== undefined,
      singularValues,
      effectiveRanks: energies.map((energy) => ({ energy, rank: effectiveRank(singularValues, energy) })),
      deltaNorm,
    };
    if (options.base) {
      const weight = await readBaseWeight(options.base, m, label);
      let sum = 0;
      for (let i = 0; i < weight.length; i++) sum += weight[i]! * weight[i]!;
      analysis.relativeNorm = deltaNorm / Math.sqrt(sum);
    }
    results.push(analysis);
  }
  return results;
}
