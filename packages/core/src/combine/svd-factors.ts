import type { Svd } from "../analyze/truncated-svd.js";

/** torch.quantile's default: linear interpolation between the order statistics around q·(n − 1). */
export function quantile(values: ArrayLike<number>, q: number): number {
  const sorted = Float64Array.from(values).sort();
  const position = q * (sorted.length - 1);
  const low = Math.floor(position);
  const high = Math.min(low + 1, sorted.length - 1);
  return sorted[low]! + (sorted[high]! - sorted[low]!) * (position - low);
}

/**
 * PEFT's factors from an SVD of the combined delta (out × in): lora_B = U_k·diag(S_k) [out, k] and
 * lora_A = V_kᵀ [k, in]. When the SVD has fewer than k directions (the delta's rank is below k),
 * the missing columns of lora_B and rows of lora_A are zero; torch would give arbitrary
 * orthonormal rows there, which do not change B·A. With `clamp` q, both factors are clamped to
 * [−h, h] where h is the q-quantile of all their entries together (PEFT's svd_clamp; when h < 0,
 * torch.clamp sets everything to h, and so does this).
 */
export function svdFactors(svd: Svd, k: number, outFeatures: number, inFeatures: number, clamp?: number): { A: Float64Array; B: Float64Array } {
  const B = new Float64Array(outFeatures * k);
  const A = new Float64Array(k * inFeatures);
  const kept = Math.min(k, svd.k);
  for (let j = 0; j < kept; j++) {
    for (let o = 0; o < outFeatures; o++) B[o * k + j] = svd.u[o * svd.k + j]! * svd.s[j]!;
    for (let i = 0; i < inFeatures; i++) A[j * inFeatures + i] = svd.v[i * svd.k + j]!;
  }
  if (clamp !== undefined) {
    const all = new Float64Array(B.length + A.length);
    all.set(B);
    all.set(A, B.length);
    const high = quantile(all, clamp);
    const low = -high;
    for (const factor of [A, B]) for (let i = 0; i < factor.length; i++) factor[i] = Math.min(Math.max(factor[i]!, low), high);
  }
  return { A, B };
}
