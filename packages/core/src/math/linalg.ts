/**
 * Dense linear algebra in float64 for initialisation and analysis: thin QR (Householder, LAPACK's
 * sign convention) and thin SVD (one-sided Jacobi). Matrices are row-major.
 */

/** Thin QR of an [m, n] matrix: Q is [m, k], R is [k, n], k = min(m, n); R's diagonal follows LAPACK (−sign(x₀)‖x‖). */
export function qrDecomposition(a: ArrayLike<number>, m: number, n: number): { q: Float64Array; r: Float64Array; k: number } {
  const k = Math.min(m, n);
  const work = Float64Array.from(a);
  const vs: Float64Array[] = [];
  const taus: number[] = [];
  for (let j = 0; j < k; j++) {
    // LAPACK's dlarfg: no reflection when the column is already zero below the diagonal.
    let below = 0;
    for (let i = j + 1; i < m; i++) below += work[i * n + j]! ** 2;
    const alpha = work[j * n + j]!;
    const v = new Float64Array(m - j);
    if (below === 0) {
      vs.push(v);
      taus.push(0);
      continue;
    }
    const norm = Math.sqrt(alpha * alpha + below);
    const beta = alpha >= 0 ? -norm : norm;
    v[0] = 1;
    for (let i = j + 1; i < m; i++) v[i - j] = work[i * n + j]! / (alpha - beta);
    const tau = (beta - alpha) / beta;
    // Apply H = I − τ v vᵀ to the trailing columns.
    for (let c = j; c < n; c++) {
      let dot = 0;
      for (let i = j; i < m; i++) dot += v[i - j]! * work[i * n + c]!;
      dot *= tau;
      for (let i = j; i < m; i++) work[i * n + c]! -= dot * v[i - j]!;
    }
    vs.push(v);
    taus.push(tau);
  }
  const r = new Float64Array(k * n);
  for (let i = 0; i < k; i++) for (let c = i; c < n; c++) r[i * n + c] = work[i * n + c]!;
  // Q = H₀ H₁ … H_{k−1} applied to the first k columns of the identity.
  const q = new Float64Array(m * k);
  for (let i = 0; i < k; i++) q[i * k + i] = 1;
  for (let j = k - 1; j >= 0; j--) {
    const v = vs[j]!;
    const tau = taus[j]!;
    if (tau === 0) continue;
    for (let c = 0; c < k; c++) {
      let dot = 0;
      for (let i = j; i < m; i++) dot += v[i - j]! * q[i * k + c]!;
      dot *= tau;
      for (let i = j; i < m; i++) q[i * k + c]! -= dot * v[i - j]!;
    }
  }
  return { q, r, k };
}

/**
 * Thin SVD of an [m, n] matrix by one-sided Jacobi: A = U·diag(S)·Vᵀ with U [m, k], S [k]
 * (descending), V [n, k], k = min(m, n). Accurate to float64 rounding; O(k²·max(m, n)) per sweep.
 */
export function svdDecomposition(a: ArrayLike<number>, m: number, n: number): { u: Float64Array; s: Float64Array; v: Float64Array; k: number } {
  if (m < n) {
    const t = new Float64Array(m * n);
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) t[j * m + i] = a[i * n + j]!;
    const r = svdDecomposition(t, n, m);
    return { u: r.v, s: r.s, v: r.u, k: r.k };
  }
  // m ≥ n: orthogonalise the columns of a working copy W = A·V.
  const k = n;
  const w = new Float64Array(m * n);
  for (let j = 0; j < n; j++) for (let i = 0; i < m; i++) w[j * m + i] = a[i * n + j]!; // column-major
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1; // column-major too
  for (let sweep = 0; sweep < 60; sweep++) {
    let rotated = false;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        let alpha = 0,
          beta = 0,
          gamma = 0;
        const po = p * m,
          qo = q * m;
        for (let i = 0; i < m; i++) {
          const x = w[po + i]!,
            y = w[qo + i]!;
          alpha += x * x;
          beta += y * y;
          gamma += x * y;
        }
        if (Math.abs(gamma) <= 1e-15 * Math.sqrt(alpha * beta) || gamma === 0) continue;
        rotated = true;
        const zeta = (beta - alpha) / (2 * gamma);
        const t = Math.sign(zeta || 1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = c * t;
        for (let i = 0; i < m; i++) {
          const x = w[po + i]!,
            y = w[qo + i]!;
          w[po + i] = c * x - s * y;
          w[qo + i] = s * x + c * y;
        }
        const pv = p * n,
          qv = q * n;
        for (let i = 0; i < n; i++) {
          const x = v[pv + i]!,
            y = v[qv + i]!;
          v[pv + i] = c * x - s * y;
          v[qv + i] = s * x + c * y;
        }
      }
    }
    if (!rotated) break;
  }
  const sigma = new Float64Array(k);
  for (let j = 0; j < k; j++) {
    let s = 0;
    for (let i = 0; i < m; i++) s += w[j * m + i]! ** 2;
    sigma[j] = Math.sqrt(s);
  }
  const order = [...sigma.keys()].sort((x, y) => sigma[y]! - sigma[x]!);
  const u = new Float64Array(m * k);
  const vOut = new Float64Array(n * k);
  const s = new Float64Array(k);
  order.forEach((src, dst) => {
    s[dst] = sigma[src]!;
    for (let i = 0; i < m; i++) u[i * k + dst] = sigma[src]! > 0 ? w[src * m + i]! / sigma[src]! : 0;
    for (let i = 0; i < n; i++) vOut[i * k + dst] = v[src * n + i]!;
  });
  completeOrthonormalColumns(u, m, k, s);
  return { u, s, v: vOut, k };
}

/**
 * Replaces the columns of a row-major [m, k] matrix whose singular value is negligible (left zero by
 * Jacobi) with unit vectors orthogonal to all other columns, so U is orthonormal as LAPACK's is.
 */
function completeOrthonormalColumns(u: Float64Array, m: number, k: number, s: Float64Array): void {
  const tolerance = (s[0] || 0) * 1e-13 * Math.max(m, k);
  const column = (j: number): Float64Array => Float64Array.from({ length: m }, (_, i) => u[i * k + j]!);
  let candidate = 0;
  for (let j = 0; j < k; j++) {
    if (s[j]! > tolerance && s[j]! > 0) continue;
    s[j] = s[j]! > 0 ? s[j]! : 0;
    for (; candidate < m; candidate++) {
      const x = new Float64Array(m);
      x[candidate] = 1;
      // Two passes of Gram–Schmidt against every other column.
      for (let pass = 0; pass < 2; pass++) {
        for (let c = 0; c < k; c++) {
          if (c === j || (c > j && !(s[c]! > tolerance))) continue;
          const q = column(c);
          let dot = 0;
          for (let i = 0; i < m; i++) dot += q[i]! * x[i]!;
          for (let i = 0; i < m; i++) x[i]! -= dot * q[i]!;
        }
      }
      const norm = Math.sqrt(x.reduce((acc, xi) => acc + xi * xi, 0));
      if (norm > 1e-8) {
        for (let i = 0; i < m; i++) u[i * k + j] = x[i]! / norm;
        candidate++;
        break;
      }
    }
  }
}
