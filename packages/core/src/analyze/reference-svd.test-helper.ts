/**
 * Test-only reference: a plain one-sided Jacobi (Hestenes) SVD of a dense row-major [m, n] matrix
 * in float64, written independently of lowrank's linalg, plus small dense helpers. Slow, simple,
 * accurate to float64 rounding.
 */
export interface ReferenceSvd {
  /** [m, n] row-major (m ≥ n is not required). */
  u: Float64Array;
  s: number[];
  /** [n, n] row-major, column j is the j-th right-singular vector. */
  v: Float64Array;
}

/** A = U·diag(s)·Vᵀ with s descending (length n; works on the columns of A). */
export function jacobiSvd(a: ArrayLike<number>, m: number, n: number): ReferenceSvd {
  const u = Float64Array.from(a); // columns get orthogonalised in place
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        let app = 0,
          aqq = 0,
          apq = 0;
        for (let i = 0; i < m; i++) {
          app += u[i * n + p]! ** 2;
          aqq += u[i * n + q]! ** 2;
          apq += u[i * n + p]! * u[i * n + q]!;
        }
        if (apq === 0 || Math.abs(apq) < 1e-300) continue;
        off = Math.max(off, Math.abs(apq) / Math.sqrt(app * aqq));
        const theta = (aqq - app) / (2 * apq);
        const t = (theta >= 0 ? 1 : -1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1),
          s = t * c;
        for (const [x, rows] of [
          [u, m],
          [v, n],
        ] as const) {
          for (let i = 0; i < rows; i++) {
            const xp = x[i * n + p]!,
              xq = x[i * n + q]!;
            x[i * n + p] = c * xp - s * xq;
            x[i * n + q] = s * xp + c * xq;
          }
        }
      }
    }
    if (off < 1e-13) break;
  }
  const norms = Array.from({ length: n }, (_, j) => Math.sqrt(Array.from({ length: m }, (_, i) => u[i * n + j]! ** 2).reduce((x, y) => x + y, 0)));
  const order = [...norms.keys()].sort((x, y) => norms[y]! - norms[x]!);
  const uo = new Float64Array(m * n),
    vo = new Float64Array(n * n);
  order.forEach((src, dst) => {
    const norm = norms[src]!;
    for (let i = 0; i < m; i++) uo[i * n + dst] = norm > 0 ? u[i * n + src]! / norm : 0;
    for (let i = 0; i < n; i++) vo[i * n + dst] = v[i * n + src]!;
  });
  return { u: uo, s: order.map((j) => norms[j]!), v: vo };
}

/** Singular values of a dense [m, n] matrix, descending, min(m, n) of them. */
export function referenceSingularValues(a: ArrayLike<number>, m: number, n: number): number[] {
  if (m >= n) return jacobiSvd(a, m, n).s;
  return jacobiSvd(transposeDense(a, m, n), n, m).s;
}

/** The best rank-k approximation Σ_{j<k} σⱼ·uⱼ·vⱼᵀ of a dense [m, n] matrix (Eckart–Young). */
export function bestRankK(a: ArrayLike<number>, m: number, n: number, k: number): Float64Array {
  const wide = m < n;
  const x = wide ? transposeDense(a, m, n) : Float64Array.from(a);
  const [rows, cols] = wide ? [n, m] : [m, n];
  const { u, s, v } = jacobiSvd(x, rows, cols);
  const out = new Float64Array(rows * cols);
  for (let j = 0; j < k; j++) for (let i = 0; i < rows; i++) for (let c = 0; c < cols; c++) out[i * cols + c]! += s[j]! * u[i * cols + j]! * v[c * cols + j]!;
  return wide ? transposeDense(out, n, m) : out;
}

export function transposeDense(a: ArrayLike<number>, m: number, n: number): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) out[j * m + i] = a[i * n + j]!;
  return out;
}

/** Row-major [m, p]·[p, n] by the triple loop. */
export function denseProduct(x: ArrayLike<number>, y: ArrayLike<number>, m: number, p: number, n: number, scale = 1): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let acc = 0;
      for (let q = 0; q < p; q++) acc += x[i * p + q]! * y[q * n + j]!;
      out[i * n + j] = scale * acc;
    }
  return out;
}

export function frobenius(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * a[i]!;
  return Math.sqrt(s);
}

export function maxAbs(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s = Math.max(s, Math.abs(a[i]!));
  return s;
}
