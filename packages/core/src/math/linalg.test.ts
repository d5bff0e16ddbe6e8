import { describe, expect, test } from "vitest";
import fc from "fast-check";
import { maxAbsDiff } from "../testing/fixtures.js";
import { qrDecomposition, svdDecomposition } from "./linalg.js";
import { SeededRandom } from "./random.js";

type Mat = { a: Float64Array; m: number; n: number };

function random(m: number, n: number, seed: number): Mat {
  const rng = new SeededRandom(seed);
  return { a: Float64Array.from({ length: m * n }, () => rng.uniform(-2, 2)), m, n };
}

/** An m × n matrix of rank ≤ rank: a product of random m × rank and rank × n factors. */
function lowRank(m: number, n: number, rank: number, seed: number): Mat {
  const l = random(m, rank, seed).a;
  const r = random(rank, n, seed + 1).a;
  const a = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) for (let k = 0; k < rank; k++) a[i * n + j]! += l[i * rank + k]! * r[k * n + j]!;
  return { a, m, n };
}

/** Row-major product of [m, k] and [k, n]. */
function matmul(x: ArrayLike<number>, y: ArrayLike<number>, m: number, k: number, n: number): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += x[i * k + p]! * y[p * n + j]!;
      out[i * n + j] = s;
    }
  return out;
}

/** Largest deviation of XᵀX from the identity for the listed columns of a row-major [rows, cols] X. */
function orthonormalError(x: ArrayLike<number>, rows: number, cols: number, which: number[] = [...Array(cols).keys()]): number {
  let err = 0;
  for (const c1 of which)
    for (const c2 of which) {
      let s = 0;
      for (let i = 0; i < rows; i++) s += x[i * cols + c1]! * x[i * cols + c2]!;
      err = Math.max(err, Math.abs(s - (c1 === c2 ? 1 : 0)));
    }
  return err;
}

const SHAPES: [string, Mat][] = [
  ["tall 9 × 4", random(9, 4, 1)],
  ["wide 3 × 7", random(3, 7, 2)],
  ["square 6 × 6", random(6, 6, 3)],
  ["column 5 × 1", random(5, 1, 4)],
  ["row 1 × 5", random(1, 5, 5)],
  ["1 × 1", { a: Float64Array.of(-3), m: 1, n: 1 }],
];
const DEFICIENT: [string, Mat][] = [
  ["rank-2 tall 8 × 5", lowRank(8, 5, 2, 10)],
  ["rank-1 wide 4 × 9", lowRank(4, 9, 1, 11)],
  ["rank-3 square 6 × 6", lowRank(6, 6, 3, 12)],
  ["duplicate columns", { a: Float64Array.of(1, 1, 2, 2, 2, 4, 3, 3, 6), m: 3, n: 3 }],
  ["a zero column", { a: Float64Array.of(1, 0, 2, 3, 0, 4, 5, 0, 6), m: 3, n: 3 }],
  ["zero matrix 4 × 3", { a: new Float64Array(12), m: 4, n: 3 }],
  ["zero matrix 2 × 5", { a: new Float64Array(10), m: 2, n: 5 }],
];

describe("qrDecomposition", () => {
  function checkQr({ a, m, n }: Mat): void {
    const { q, r, k } = qrDecomposition(a, m, n);
    expect(k).toBe(Math.min(m, n));
    expect(q.length).toBe(m * k);
    expect(r.length).toBe(k * n);
    expect(orthonormalError(q, m, k)).toBeLessThan(1e-12);
    for (let i = 0; i < k; i++) for (let j = 0; j < Math.min(i, n); j++) expect(r[i * n + j]).toBe(0);
    expect(maxAbsDiff(matmul(q, r, m, k, n), a)).toBeLessThan(1e-12);
  }

  test.each([...SHAPES, ...DEFICIENT])("%s: Q orthonormal, R upper triangular, Q·R = A", (_name, mat) => {
    checkQr(mat);
  });

  test("property: random shapes", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 12 }), fc.nat(), (m, n, seed) => {
        checkQr(random(m, n, seed));
      }),
      { numRuns: 100 },
    );
  });

  test("R[0,0] = −sign(a₀₀)·‖A[:,0]‖ (LAPACK's Householder sign)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 8 }), fc.integer({ min: 1, max: 8 }), fc.nat(), (m, n, seed) => {
        const { a } = random(m, n, seed);
        let norm = 0;
        for (let i = 0; i < m; i++) norm += a[i * n]! ** 2;
        norm = Math.sqrt(norm);
        const { r } = qrDecomposition(a, m, n);
        expect(r[0]).toBeCloseTo(a[0]! >= 0 ? -norm : norm, 12);
      }),
      { numRuns: 100 },
    );
    // a₀₀ = 0 counts as positive, as in LAPACK's SIGN: R[0,0] = −‖x‖
    expect(qrDecomposition([0, 1, 3, 2], 2, 2).r[0]).toBeCloseTo(-3, 14);
  });

  test("matches numpy.linalg.qr on a fixed tall matrix", () => {
    // numpy 2.4: np.linalg.qr([[2,-1,0.5],[1,3,-2],[0,1,4],[-1,2,1]])
    const a = [2, -1, 0.5, 1, 3, -2, 0, 1, 4, -1, 2, 1];
    const { q, r } = qrDecomposition(a, 4, 3);
    expect(
      maxAbsDiff(
        q,
        [
          -0.816496580927726, 0.17309692896316617, -0.24917970202021072, -0.408248290463863, -0.8222104125750394, 0.32852050266346194, -0.0,
          -0.2596453934447493, -0.8950634072566775, 0.408248290463863, -0.476016554648707, -0.16983890137695948,
        ],
      ),
    ).toBeLessThan(1e-12);
    expect(
      maxAbsDiff(r, [-2.449489742783178, 0.4082482904638629, 0.816496580927726, 0.0, -3.8514066694304474, 0.21637116120395739, 0.0, 0.0, -4.5317233867406985]),
    ).toBeLessThan(1e-12);
  });

  test("does not modify its input", () => {
    const { a, m, n } = random(5, 3, 42);
    const copy = a.slice();
    qrDecomposition(a, m, n);
    expect(a).toEqual(copy);
  });
});

describe("svdDecomposition", () => {
  function checkSvd({ a, m, n }: Mat, fullRank: boolean): void {
    const { u, s, v, k } = svdDecomposition(a, m, n);
    expect(k).toBe(Math.min(m, n));
    expect(u.length).toBe(m * k);
    expect(v.length).toBe(n * k);
    expect(s.length).toBe(k);
    for (let j = 0; j < k; j++) {
      expect(s[j]).toBeGreaterThanOrEqual(0);
      if (j > 0) expect(s[j]).toBeLessThanOrEqual(s[j - 1]!);
    }
    // Columns belonging to non-negligible singular values are orthonormal (all of them at full rank).
    const significant = [...s.keys()].filter((j) => s[j]! > 1e-9 * Math.max(1, s[0]!));
    if (fullRank) expect(significant.length).toBe(k);
    expect(orthonormalError(u, m, k, significant)).toBeLessThan(1e-10);
    expect(orthonormalError(v, n, k, significant)).toBeLessThan(1e-10);
    // U·diag(S)·Vᵀ = A
    const us = Float64Array.from(u, (x, idx) => x * s[idx % k]!);
    const vt = new Float64Array(k * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < k; j++) vt[j * n + i] = v[i * k + j]!;
    expect(maxAbsDiff(matmul(us, vt, m, k, n), a)).toBeLessThan(1e-10);
  }

  test.each(SHAPES)("%s: U, V orthonormal, S descending, U·diag(S)·Vᵀ = A", (_name, mat) => {
    checkSvd(mat, true);
  });

  test.each(DEFICIENT)("%s: S descending with zeros, reconstruction within 1e-10", (_name, mat) => {
    checkSvd(mat, false);
  });

  test("property: random shapes and ranks", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10 }), fc.integer({ min: 1, max: 10 }), fc.integer({ min: 1, max: 10 }), fc.nat(), (m, n, rank, seed) => {
        const full = rank >= Math.min(m, n);
        checkSvd(full ? random(m, n, seed) : lowRank(m, n, rank, seed), full);
      }),
      { numRuns: 100 },
    );
  });

  test.each([
    ["the fixed 4 × 3 matrix", [2, -1, 0.5, 1, 3, -2, 0, 1, 4, -1, 2, 1], 4, 3, [4.6399245603878905, 3.885615238294514, 2.371306452958513]],
    ["its transpose", [2, 1, 0, -1, -1, 3, 1, 2, 0.5, -2, 4, 1], 3, 4, [4.6399245603878905, 3.8856152382945157, 2.371306452958513]],
    ["a rank-2 4 × 3 matrix", [1, 2, 3, 2, 4, 6, 1, 0, 1, 3, 4, 7], 4, 3, [12.034953270480418, 1.0769864332259522, 0]],
  ])("singular values of %s match numpy", (_name, a, m, n, expected) => {
    const { s } = svdDecomposition(a, m, n);
    expect(maxAbsDiff(s, expected)).toBeLessThan(1e-12);
  });

  test("the rank of a low-rank product shows in S", () => {
    const { s } = svdDecomposition(lowRank(12, 9, 3, 77).a, 12, 9);
    expect(s[2]).toBeGreaterThan(1e-3);
    for (let j = 3; j < 9; j++) expect(s[j]).toBeLessThan(1e-12);
  });

  test("a zero matrix has all-zero singular values", () => {
    expect(Array.from(svdDecomposition(new Float64Array(12), 4, 3).s)).toEqual([0, 0, 0]);
  });
});
