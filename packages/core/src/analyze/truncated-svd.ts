/**
 * Truncated SVDs for LoRA updates, in float64. A LoRA update is a sum of low-rank products, whose
 * SVD is exact and cheap through two thin QRs and the SVD of a small core (`lowRankSvd`); a dense
 * matrix (a pruned merge) goes through its Gram matrix (`denseTruncatedSvd`).
 */
import { qrDecomposition, svdDecomposition } from "../math/linalg.js";
import { symmetricEigen } from "./symmetric-eigen.js";

/** M ≈ U·diag(S)·Vᵀ: `u` row-major [m, k], `s` descending [k], `v` row-major [n, k]. */
export interface Svd {
  u: Float64Array;
  s: Float64Array;
  v: Float64Array;
  k: number;
}

/** Row-major product of [m, p] and [p, n]. */
export function multiply(x: ArrayLike<number>, y: ArrayLike<number>, m: number, p: number, n: number): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let q = 0; q < p; q++) {
      const f = x[i * p + q]!;
      if (f === 0) continue;
      for (let j = 0, yo = q * n, oo = i * n; j < n; j++) out[oo + j]! += f * y[yo + j]!;
    }
  }
  return out;
}

function transposed(x: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = x[i * cols + j]!;
  return out;
}

/**
 * Exact thin SVD of M = L·R with L [m, p] and R [p, n] (row-major), without forming M:
 * L = Q_L·R_L and Rᵀ = Q_R·R_R (thin QR), then the core C = R_L·R_Rᵀ (at most p × p) is
 * decomposed, C = U_c·S·V_cᵀ, giving U = Q_L·U_c and V = Q_R·V_c. k = min(m, n, p).
 * Cost O((m + n)·p²) instead of O(m·n·min(m, n)).
 */
export function lowRankSvd(left: ArrayLike<number>, right: ArrayLike<number>, m: number, p: number, n: number): Svd {
  const l = qrDecomposition(left, m, p);
  const r = qrDecomposition(transposed(right, p, n), n, p);
  const core = multiply(l.r, transposed(r.r, r.k, p), l.k, p, r.k);
  const c = svdDecomposition(core, l.k, r.k);
  return { u: multiply(l.q, c.u, m, l.k, c.k), s: c.s, v: multiply(r.q, c.v, n, r.k, c.k), k: c.k };
}

/**
 * The top-k SVD of a dense row-major [m, n] matrix, k ≤ min(m, n), through the eigen-decomposition
 * of its Gram matrix on the smaller side (MᵀM or M·Mᵀ, Householder + QL). Singular values below
 * about √ε·σ₁ lose relative accuracy, but U·diag(S)·Vᵀ stays the projection of M onto the computed
 * directions, so the product is accurate. A direction with σ = 0 gets a zero vector on the larger side.
 */
export function denseTruncatedSvd(a: ArrayLike<number>, m: number, n: number, k: number): Svd {
  const wide = m < n;
  const [rows, cols] = wide ? [n, m] : [m, n];
  const x = wide ? transposed(a, m, n) : Float64Array.from(a); // [rows, cols], rows ≥ cols
  const gram = new Float64Array(cols * cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    for (let i = 0; i < cols; i++) {
      const f = x[o + i]!;
      if (f === 0) continue;
      for (let j = i, g = i * cols; j < cols; j++) gram[g + j]! += f * x[o + j]!;
    }
  }
  for (let i = 0; i < cols; i++) for (let j = 0; j < i; j++) gram[i * cols + j] = gram[j * cols + i]!;
  const { values, vectors } = symmetricEigen(gram, cols);
  const s = new Float64Array(k);
  const small = new Float64Array(cols * k); // eigenvectors: the right (or, when wide, left) singular vectors
  const large = new Float64Array(rows * k);
  for (let j = 0; j < k; j++) {
    s[j] = Math.sqrt(Math.max(values[j]!, 0));
    for (let i = 0; i < cols; i++) small[i * k + j] = vectors[j * cols + i]!;
    if (s[j] === 0) continue;
    for (let r = 0; r < rows; r++) {
      let acc = 0;
      for (let i = 0, o = r * cols; i < cols; i++) acc += x[o + i]! * vectors[j * cols + i]!;
      large[r * k + j] = acc / s[j]!;
    }
  }
  return wide ? { u: small, s, v: large, k } : { u: large, s, v: small, k };
}
