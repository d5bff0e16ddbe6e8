import { describe, expect, test } from "vitest";
import fc from "fast-check";
import { addLowRankProduct, transpose } from "./low-rank-update.js";
import { SeededRandom } from "./random.js";

const RANKS = [1, 2, 3, 4, 5, 8, 16];

function randomMatrix(rng: SeededRandom, length: number): Float32Array {
  return Float32Array.from({ length }, () => rng.uniform(-1, 1));
}

/** target + scale · left·right, computed with a float64 triple loop. */
function naive(target: Float32Array, rows: number, cols: number, rank: number, left: Float32Array, right: Float32Array, scale: number): Float64Array {
  const out = Float64Array.from(target);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      let acc = 0;
      for (let k = 0; k < rank; k++) acc += left[i * rank + k]! * right[k * cols + j]!;
      out[i * cols + j]! += scale * acc;
    }
  }
  return out;
}

function maxRelError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  expect(got.length).toBe(want.length);
  let max = 0;
  for (let i = 0; i < got.length; i++) {
    const err = Math.abs(got[i]! - want[i]!) / (1 + Math.abs(want[i]!));
    if (!(err <= max)) max = Number.isNaN(err) ? Infinity : err;
  }
  return max;
}

describe("addLowRankProduct", () => {
  test.each(RANKS)("rank %i matches a float64 triple loop on random sizes", (rank) => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 24 }),
        fc.integer({ min: 1, max: 24 }),
        fc.double({ min: -4, max: 4, noNaN: true }),
        fc.nat(),
        (rows, cols, scale, seed) => {
          const rng = new SeededRandom(seed);
          const target = randomMatrix(rng, rows * cols);
          const left = randomMatrix(rng, rows * rank);
          const right = randomMatrix(rng, rank * cols);
          const want = naive(target, rows, cols, rank, left, right, scale);
          addLowRankProduct({ target, rows, cols, rank, left, right, scale });
          expect(maxRelError(target, want)).toBeLessThan(1e-6);
        },
      ),
      { numRuns: 40 },
    );
  });

  // rows × cols ≥ 16384 takes the WebAssembly SIMD kernel (float32 multiply-adds); forceJs the float64 loop.
  const LARGE = RANKS.flatMap((rank) =>
    (
      [
        [130, 129],
        [9, 2000],
        [2000, 9],
        [16384, 1],
        [1, 16384],
      ] as const
    ).map(([rows, cols]) => [rank, rows, cols] as const),
  );
  test.each(LARGE)("rank %i, large [%i × %i] target: both kernels match a float64 triple loop", (rank, rows, cols) => {
    const rng = new SeededRandom(rank * 7919 + rows);
    const base = randomMatrix(rng, rows * cols);
    const left = randomMatrix(rng, rows * rank);
    const right = randomMatrix(rng, rank * cols);
    const want = naive(base, rows, cols, rank, left, right, -1.7);
    for (const forceJs of [false, true]) {
      const target = base.slice();
      addLowRankProduct({ target, rows, cols, rank, left, right, scale: -1.7, forceJs });
      expect(maxRelError(target, want)).toBeLessThan(forceJs ? 1e-6 : rank * 4e-7);
    }
  });

  test("a large update reads factor subarrays at non-zero offsets correctly", () => {
    const rng = new SeededRandom(99);
    const rows = 200,
      cols = 100,
      rank = 3;
    const leftBuf = randomMatrix(rng, rows * rank + 5);
    const rightBuf = randomMatrix(rng, rank * cols + 7);
    const left = leftBuf.subarray(5);
    const right = rightBuf.subarray(7);
    const base = randomMatrix(rng, rows * cols);
    const target = base.slice();
    addLowRankProduct({ target, rows, cols, rank, left, right, scale: 0.5 });
    expect(maxRelError(target, naive(base, rows, cols, rank, left, right, 0.5))).toBeLessThan(2e-6);
  });

  test.each(RANKS)("rank %i with a reused scratch buffer gives the same result", (rank) => {
    const rng = new SeededRandom(rank);
    const rows = 7,
      cols = 9;
    const left = randomMatrix(rng, rows * rank);
    const right = randomMatrix(rng, rank * cols);
    const a = randomMatrix(rng, rows * cols);
    const b = a.slice();
    addLowRankProduct({ target: a, rows, cols, rank, left, right, scale: 0.5 });
    const scratch = new Float64Array(rank + 3).fill(123);
    addLowRankProduct({ target: b, rows, cols, rank, left, right, scale: 0.5, coefficients: scratch });
    expect(Array.from(b)).toEqual(Array.from(a));
  });

  test("a small hand-computed case", () => {
    // [[1, 2], [3, 4]] · [[5, 6, 7], [8, 9, 10]] = [[21, 24, 27], [47, 54, 61]]
    const target = Float32Array.of(1, 1, 1, 0, 0, 0);
    addLowRankProduct({ target, rows: 2, cols: 3, rank: 2, left: Float32Array.of(1, 2, 3, 4), right: Float32Array.of(5, 6, 7, 8, 9, 10), scale: 2 });
    expect(Array.from(target)).toEqual([43, 49, 55, 94, 108, 122]);
  });

  test("scale 0 or a zero left factor leaves the target bit-identical", () => {
    const rng = new SeededRandom(3);
    const target = randomMatrix(rng, 12);
    const before = target.slice();
    addLowRankProduct({ target, rows: 3, cols: 4, rank: 2, left: randomMatrix(rng, 6), right: randomMatrix(rng, 8), scale: 0 });
    addLowRankProduct({ target, rows: 3, cols: 4, rank: 2, left: new Float32Array(6), right: randomMatrix(rng, 8), scale: 3 });
    expect(target).toEqual(before);
  });

  test("only the addressed rows × cols are touched", () => {
    const target = new Float32Array(8).fill(1);
    addLowRankProduct({ target, rows: 2, cols: 3, rank: 1, left: Float32Array.of(1, 1), right: Float32Array.of(1, 1, 1), scale: 1 });
    expect(Array.from(target)).toEqual([2, 2, 2, 2, 2, 2, 1, 1]);
  });
});

describe("transpose", () => {
  test("a 2 × 3 matrix", () => {
    expect(Array.from(transpose(Float32Array.of(1, 2, 3, 4, 5, 6), 2, 3))).toEqual([1, 4, 2, 5, 3, 6]);
  });

  test("property: transposing twice is the identity and elements move to [j, i]", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 12 }), fc.nat(), (rows, cols, seed) => {
        const m = randomMatrix(new SeededRandom(seed), rows * cols);
        const t = transpose(m, rows, cols);
        for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) expect(t[j * rows + i]).toBe(m[i * cols + j]);
        expect(transpose(t, cols, rows)).toEqual(m);
      }),
      { numRuns: 50 },
    );
  });
});
