import { LowrankError } from "../errors/lowrank-error.js";
import { addLowRankProduct, transpose } from "./low-rank-update.js";
import { checkFactors, type LoraFactors } from "./lora-factors.js";

/** Stored shape of the base weight for these factors: [out, in] or [in, out]. */
export function storedShape(f: LoraFactors): [number, number] {
  return f.layout === "out_in" ? [f.outFeatures, f.inFeatures] : [f.inFeatures, f.outFeatures];
}

/** target += sign · scaling · B·A in the stored layout (transposed for `in_out`). */
function addDelta(target: Float32Array, f: LoraFactors, sign: 1 | -1): void {
  if (f.layout === "out_in") {
    addLowRankProduct({ target, rows: f.outFeatures, cols: f.inFeatures, rank: f.r, left: f.B, right: f.A, scale: sign * f.scaling });
  } else {
    // (B·A)ᵀ = Aᵀ·Bᵀ: rows are input features.
    addLowRankProduct({
      target,
      rows: f.inFeatures,
      cols: f.outFeatures,
      rank: f.r,
      left: transpose(f.A, f.r, f.inFeatures),
      right: transpose(f.B, f.outFeatures, f.r),
      scale: sign * f.scaling,
    });
  }
}

/**
 * ΔW = scaling · B·A in the base weight's stored layout (transposed for Conv1D and embeddings).
 * Mirrors PEFT's `get_delta_weight`.
 */
export function loraDelta(f: LoraFactors): Float32Array {
  checkFactors(f, "lora delta");
  const out = new Float32Array(f.inFeatures * f.outFeatures);
  addDelta(out, f, 1);
  return out;
}

/** Per-output-feature Euclidean norms of a stored weight (rows for `out_in`, columns for `in_out`). */
export function outputNorms(weight: Float32Array, f: Pick<LoraFactors, "layout" | "inFeatures" | "outFeatures">): Float32Array {
  const norms = new Float64Array(f.outFeatures);
  if (f.layout === "out_in") {
    for (let o = 0; o < f.outFeatures; o++) {
      let s = 0;
      for (let i = 0, base = o * f.inFeatures; i < f.inFeatures; i++) s += weight[base + i]! * weight[base + i]!;
      norms[o] = s;
    }
  } else {
    for (let i = 0; i < f.inFeatures; i++) {
      const base = i * f.outFeatures;
      for (let o = 0; o < f.outFeatures; o++) norms[o]! += weight[base + o]! * weight[base + o]!;
    }
  }
  return Float32Array.from(norms, Math.sqrt);
}

function scaleOutputs(weight: Float32Array, f: LoraFactors, factor: Float32Array | Float64Array): void {
  if (f.layout === "out_in") {
    for (let o = 0; o < f.outFeatures; o++) {
      const s = factor[o]!;
      for (let i = 0, base = o * f.inFeatures; i < f.inFeatures; i++) weight[base + i]! *= s;
    }
  } else {
    for (let i = 0; i < f.inFeatures; i++) {
      const base = i * f.outFeatures;
      for (let o = 0; o < f.outFeatures; o++) weight[base + o]! *= factor[o]!;
    }
  }
}

function checkWeight(weight: Float32Array, f: LoraFactors, label: string): void {
  checkFactors(f, label);
  if (weight.length !== f.inFeatures * f.outFeatures) {
    const [a, b] = storedShape(f);
    throw new LowrankError("SHAPE_MISMATCH", `${label}: base weight has ${weight.length} values, but the adapter expects [${a}, ${b}]`);
  }
}

/** What a merge must remember to be undone: DoRA's weight norm. */
export interface MergeRecord {
  /** DoRA: ‖W + ΔW‖ per output feature at merge time (PEFT caches the same). */
  weightNorm?: Float32Array;
}

export interface MergeOptions {
  /** Refuse a result with NaN or ±Infinity and leave the weight untouched (PEFT's safe_merge). */
  safe?: boolean;
  label?: string;
  /** The layer's bias, updated in place by lora_B.bias when the adapter has lora_bias. */
  bias?: Float32Array;
}

/**
 * Merges LoRA (or DoRA) factors into a base weight in place, in its stored layout:
 * W += scaling·B·A (transposed for `in_out`); with a magnitude vector, DoRA's
 * W ← (m / ‖W + ΔW‖)·(W + ΔW) per output feature; with lora_bias, bias += scaling·lora_B.bias.
 * Mirrors PEFT's Linear/Conv1D/Embedding `merge`.
 * @throws LowrankError MERGE_NOT_FINITE with `safe` when the result is not finite (weight untouched),
 *   SHAPE_MISMATCH when the factors do not fit the weight.
 */
export function mergeLora(weight: Float32Array, f: LoraFactors, options: MergeOptions = {}): MergeRecord {
  const label = options.label ?? "merge";
  checkWeight(weight, f, label);
  const work = options.safe ? weight.slice() : weight;
  addDelta(work, f, 1);
  const record: MergeRecord = {};
  if (f.magnitude) {
    const norm = outputNorms(work, f);
    scaleOutputs(work, f, doraFactor(f.magnitude, norm));
    record.weightNorm = norm;
  }
  const bias = options.bias && f.loraBias ? options.bias : undefined;
  const newBias = bias ? bias.slice() : undefined;
  if (newBias) mergeLoraBias(newBias, f.loraBias!, f.scaling, { safe: options.safe, label });
  if (options.safe) {
    assertFinite(work, label);
    weight.set(work);
  }
  if (bias && newBias) bias.set(newBias);
  return record;
}

function assertFinite(values: Float32Array, label: string): void {
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) {
      throw new LowrankError(
        "MERGE_NOT_FINITE",
        `${label}: merging gives a non-finite value (NaN or Infinity) at element ${i}; the adapter is probably broken, the weight was left unchanged`,
      );
    }
  }
}

/** DoRA's per-output factor m / ‖W + ΔW‖ from the magnitude and the norms of the updated weight. */
function doraFactor(magnitude: Float32Array, norm: ArrayLike<number>): Float64Array {
  const factor = new Float64Array(magnitude.length);
  for (let o = 0; o < magnitude.length; o++) factor[o] = magnitude[o]! / norm[o]!;
  return factor;
}

/**
 * DoRA's per-output factor m / ‖W + ΔW‖ for an unmerged forward: W + scaling·B·A is formed on a
 * copy (the weight is untouched) and its norm taken per output feature, as the merge does. The
 * unmerged DoRA layer is then factor ⊙ (x·W + scaling·x·Aᵀ·Bᵀ) + bias (PEFT 0.12's forward).
 * @throws LowrankError SHAPE_MISMATCH when the factors do not fit the weight, USAGE without a magnitude.
 */
export function doraOutputScale(weight: Float32Array, f: LoraFactors): Float64Array {
  if (!f.magnitude) throw new LowrankError("USAGE", "doraOutputScale needs a DoRA magnitude vector");
  checkWeight(weight, f, "DoRA scale");
  const work = weight.slice();
  addDelta(work, f, 1);
  return doraFactor(f.magnitude, outputNorms(work, f));
}

/**
 * PEFT's lora_bias merge: bias += scaling · lora_B.bias, in place (the forward scales lora_B's
 * output, bias included, by the same factor).
 * @throws LowrankError MERGE_NOT_FINITE with `safe` (bias untouched).
 */
export function mergeLoraBias(
  bias: Float32Array,
  loraBias: Float32Array,
  scaling: number,
  options: { safe?: boolean; label?: string; sign?: 1 | -1 } = {},
): void {
  const sign = options.sign ?? 1;
  if (bias.length !== loraBias.length) {
    throw new LowrankError("SHAPE_MISMATCH", `${options.label ?? "merge"}: lora_B.bias has ${loraBias.length} values but the layer's bias has ${bias.length}`);
  }
  const next = Float32Array.from(bias, (b, o) => b + sign * scaling * loraBias[o]!);
  if (options.safe) assertFinite(next, options.label ?? "merge");
  bias.set(next);
}

/**
 * Undoes `mergeLora`: W −= ΔW, or for DoRA W ← W·‖W₀ + ΔW‖/m − ΔW using the recorded norm;
 * bias −= scaling·lora_B.bias. Mirrors PEFT's `unmerge`.
 */
export function unmergeLora(weight: Float32Array, f: LoraFactors, record: MergeRecord = {}, options: { label?: string; bias?: Float32Array } = {}): void {
  const label = options.label ?? "unmerge";
  checkWeight(weight, f, label);
  if (f.magnitude) {
    if (!record.weightNorm) throw new LowrankError("ADAPTER_INVALID", `${label}: unmerging DoRA needs the weight norm recorded at merge time`);
    const factor = new Float64Array(f.outFeatures);
    for (let o = 0; o < f.outFeatures; o++) factor[o] = record.weightNorm[o]! / f.magnitude[o]!;
    scaleOutputs(weight, f, factor);
  }
  addDelta(weight, f, -1);
  if (options.bias && f.loraBias) mergeLoraBias(options.bias, f.loraBias, f.scaling, { sign: -1, label });
}
