import { describe, expect, test } from "vitest";
import { SeededRandom } from "../math/random.js";
import { bestRankK, denseProduct, maxAbs, referenceSingularValues } from "./reference-svd.test-helper.js";
import { symmetricEigen } from "./symmetric-eigen.js";
import { denseTruncatedSvd, lowRankSvd, type Svd } from "./truncated-svd.js";

function random(length: number, seed: number): Float64Array {
  const rng = new SeededRandom(seed);
  return Float64Array.from({ length }, () => rng.uniform(-1, 1));
}

/** U_k·diag(S_k)·V_kᵀ as a dense [m, n] matrix. */
function reconstruct(svd: Svd, m: number, n: number, k = svd.k): Float64Array {
  const out = new Float64Array(m * n);
  for (let j = 0; j < k; j++)
    for (let i = 0; i < m; i++) for (let c = 0; c < n; c++) out[i * n + c]! += svd.u[i * svd.k + j]! * svd.s[j]! * svd.v[c * svd.k + j]!;
  return out;
}

/** max |XᵀX − I| over the first k columns of a row-major [rows, cols] X. */
function orthonormality(x: Float64Array, rows: number, cols: number, k = cols): number {
  let err = 0;
  for (let a = 0; a < k; a++)
    for (let b = 0; b < k; b++) {
      let s = 0;
      for (let i = 0; i < rows; i++) s += x[i * cols + a]! * x[i * cols + b]!;
      err = Math.max(err, Math.abs(s - (a === b ? 1 : 0)));
    }
  return err;
}

const diff = (a: ArrayLike<number>, b: ArrayLike<number>): number => maxAbs(Float64Array.from(a, (x, i) => x - b[i]!));

describe("symmetricEigen", () => {
  test.each([1, 2, 3, 10, 47])("n = %i: A = V·diag(λ)·Vᵀ with V orthonormal and λ descending", (n) => {
    const x = random(n * n, n);
    const a = Float64Array.from({ length: n * n }, (_, i) => x[i]! + x[(i % n) * n + Math.floor(i / n)]!); // X + Xᵀ
    const { values, vectors } = symmetricEigen(a, n);
    const back = new Float64Array(n * n);
    for (let j = 0; j < n; j++)
      for (let r = 0; r < n; r++) for (let c = 0; c < n; c++) back[r * n + c]! += values[j]! * vectors[j * n + r]! * vectors[j * n + c]!;
    expect(diff(back, a)).toBeLessThan(1e-12 * n);
    expect(
      orthonormality(
        Float64Array.from({ length: n * n }, (_, i) => vectors[(i % n) * n + Math.floor(i / n)]!),
        n,
        n,
      ),
    ).toBeLessThan(1e-12 * n);
    for (let j = 1; j < n; j++) expect(values[j]).toBeLessThanOrEqual(values[j - 1]!);
  });

  test("repeated eigenvalues and a zero matrix", () => {
    const identity = Float64Array.from({ length: 9 }, (_, i) => (i % 4 === 0 ? 2 : 0));
    expect([...symmetricEigen(identity, 3).values]).toEqual([2, 2, 2]);
    expect([...symmetricEigen(new Float64Array(16), 4).values]).toEqual([0, 0, 0, 0]);
  });
});

describe("lowRankSvd: SVD of L·R through the core", () => {
  test.each([
    [30, 4, 20],
    [20, 4, 30],
    [64, 12, 192],
    [5, 8, 7],
    [3, 1, 9],
  ])("[%i × %i]·[%i-wide]: σ equal Jacobi's on the dense product, U·S·Vᵀ = L·R", (m, p, n) => {
    const l = random(m * p, m + p),
      r = random(p * n, n + p);
    const dense = denseProduct(l, r, m, p, n);
    const svd = lowRankSvd(l, r, m, p, n);
    expect(svd.k).toBe(Math.min(m, n, p));
    const reference = referenceSingularValues(dense, m, n);
    for (let j = 0; j < svd.k; j++) expect(Math.abs(svd.s[j]! - reference[j]!)).toBeLessThan(1e-12 * reference[0]!);
    expect(diff(reconstruct(svd, m, n), dense)).toBeLessThan(1e-12 * reference[0]!);
    expect(orthonormality(svd.u, m, svd.k)).toBeLessThan(1e-12);
    expect(orthonormality(svd.v, n, svd.k)).toBeLessThan(1e-12);
  });

  test("a rank-deficient sum (the same factor twice) has zero trailing singular values", () => {
    const b = random(10 * 2, 1),
      a = random(2 * 8, 2);
    const left = new Float64Array(10 * 4),
      right = new Float64Array(4 * 8);
    for (let i = 0; i < 10; i++) for (let j = 0; j < 2; j++) left[i * 4 + j] = left[i * 4 + j + 2] = b[i * 2 + j]!;
    right.set(a);
    right.set(a, 16);
    const svd = lowRankSvd(left, right, 10, 4, 8);
    expect(svd.s[2]).toBeLessThan(1e-12 * svd.s[0]!);
    expect(diff(reconstruct(svd, 10, 8), denseProduct(left, right, 10, 4, 8))).toBeLessThan(1e-12);
  });
});

describe("denseTruncatedSvd: top-k SVD via the Gram matrix", () => {
  test.each([
    [40, 30, 5],
    [30, 40, 5],
    [25, 25, 25],
    [64, 192, 4],
    [12, 7, 1],
  ])("[%i × %i], k = %i: σ match Jacobi; U_k·S_k·V_kᵀ is the best rank-k approximation", (m, n, k) => {
    const a = random(m * n, m * n + k);
    const svd = denseTruncatedSvd(a, m, n, k);
    const reference = referenceSingularValues(a, m, n);
    for (let j = 0; j < k; j++) expect(Math.abs(svd.s[j]! - reference[j]!)).toBeLessThan(1e-10 * reference[0]!);
    expect(diff(reconstruct(svd, m, n), bestRankK(a, m, n, k))).toBeLessThan(1e-9);
  });

  test("a matrix of rank 2 asked for k = 4: the extra directions have σ = 0 and add nothing", () => {
    const a = denseProduct(random(9 * 2, 5), random(2 * 6, 6), 9, 2, 6);
    const svd = denseTruncatedSvd(a, 9, 6, 4);
    expect(svd.s[2]).toBeLessThan(1e-7 * svd.s[0]!);
    expect(diff(reconstruct(svd, 9, 6), a)).toBeLessThan(1e-12);
  });
});
