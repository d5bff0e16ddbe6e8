// Regression tests for bugs found by review (each failed before its fix).
import { describe, expect, test } from "vitest";
import { LowrankError } from "../errors/lowrank-error.js";
import { qrDecomposition, svdDecomposition } from "./linalg.js";
import { mergeLora } from "./merge.js";

describe("QR follows LAPACK when a column is already reduced", () => {
  test.each([
    // [A, m, n, expected R diagonal from numpy.linalg.qr]
    [[2, -1, 0.5, 1, 3, -2, 0, 1, 4], 3, 3, [-2.2360679775, -3.286335345, 4.4226898134]],
    [[-3, 1, 0, 2], 2, 2, [-3, 2]],
    [[1, 2, 3, 4, -2, 0, 1, 5], 2, 4, [-2.2360679775, 1.788854382]],
  ])("%j", (a, m, n, diagonal) => {
    const { q, r, k } = qrDecomposition(a, m, n);
    diagonal.forEach((d, j) => expect(r[j * n + j]).toBeCloseTo(d, 8));
    for (let i = 0; i < m; i++) {
      for (let c = 0; c < n; c++) {
        let sum = 0;
        for (let t = 0; t < k; t++) sum += q[i * k + t]! * r[t * n + c]!;
        expect(sum).toBeCloseTo(a[i * n + c]!, 10);
      }
    }
  });
});

describe("SVD returns orthonormal singular vectors even for zero singular values", () => {
  test.each([
    [new Array(12).fill(0), 4, 3],
    [[1, 2, 3, 2, 4, 6, 1, 1, 1, 0, 0, 0], 4, 3],
    [[1, 2, 3, 4, 2, 4, 6, 8], 2, 4],
  ])("%j (%i × %i)", (a, m, n) => {
    const { u, s, v, k } = svdDecomposition(a, m, n);
    for (const [mat, rows] of [
      [u, m],
      [v, n],
    ] as const) {
      for (let x = 0; x < k; x++) {
        for (let y = 0; y < k; y++) {
          let dot = 0;
          for (let i = 0; i < rows; i++) dot += mat[i * k + x]! * mat[i * k + y]!;
          expect(dot).toBeCloseTo(x === y ? 1 : 0, 10);
        }
      }
    }
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let sum = 0;
        for (let t = 0; t < k; t++) sum += u[i * k + t]! * s[t]! * v[j * k + t]!;
        expect(sum).toBeCloseTo(a[i * n + j], 10);
      }
    }
  });
});

test("a NaN in lora_A poisons the merge even where lora_B is zero (0·NaN), so safe merge refuses", () => {
  const weight = new Float32Array([1, 2, 3, 4]);
  const factors = { A: new Float32Array([NaN, 1]), B: new Float32Array([0, 0]), r: 1, inFeatures: 2, outFeatures: 2, scaling: 1, layout: "out_in" as const };
  expect(() => mergeLora(weight, factors, { safe: true })).toThrow(LowrankError);
  expect(Array.from(weight)).toEqual([1, 2, 3, 4]);
});
