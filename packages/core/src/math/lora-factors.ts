import { LowrankError } from "../errors/lowrank-error.js";
import type { WeightLayout } from "../model/model-description.js";

/**
 * One module's LoRA factors in PEFT's shapes: `A` is [r, in] (lora_A.weight or lora_embedding_A),
 * `B` is [out, r] (lora_B.weight or lora_embedding_B). `layout` is how the base weight is stored:
 * `out_in` (Linear) or `in_out` (Conv1D with fan_in_fan_out, and embeddings).
 */
export interface LoraFactors {
  A: Float32Array;
  B: Float32Array;
  r: number;
  inFeatures: number;
  outFeatures: number;
  scaling: number;
  layout: WeightLayout;
  /** DoRA magnitude (lora_magnitude_vector), one entry per output feature. */
  magnitude?: Float32Array;
  /** lora_B.bias (PEFT's lora_bias), one entry per output feature. */
  loraBias?: Float32Array;
}

/** Checks factor sizes against r, in and out. @throws LowrankError SHAPE_MISMATCH naming `label`. */
export function checkFactors(f: LoraFactors, label: string): void {
  const bad = (what: string, got: number, want: string): never => {
    throw new LowrankError("SHAPE_MISMATCH", `${label}: ${what} has ${got} values, expected ${want}`);
  };
  if (f.A.length !== f.r * f.inFeatures) bad("lora_A", f.A.length, `r × in = ${f.r} × ${f.inFeatures}`);
  if (f.B.length !== f.outFeatures * f.r) bad("lora_B", f.B.length, `out × r = ${f.outFeatures} × ${f.r}`);
  if (f.magnitude && f.magnitude.length !== f.outFeatures) bad("lora_magnitude_vector", f.magnitude.length, `out = ${f.outFeatures}`);
  if (f.loraBias && f.loraBias.length !== f.outFeatures) bad("lora_B.bias", f.loraBias.length, `out = ${f.outFeatures}`);
}
