import { describe, expect, test } from "vitest";
import { SeededRandom } from "../random.js";
import { addLowRankProductWasm, wasmKernel } from "./wasm-kernel.js";

function random(n: number, seed: number): Float32Array {
  const rng = new SeededRandom(seed);
  return Float32Array.from({ length: n }, () => rng.normal());
}

/**
 * Largest error of `got` against base + scale · left · right computed in float64, in units of what
 * float32 accumulation may lose on each element: (rank + 2) roundings of the magnitude of the terms
 * summed, |base| + |scale| · Σ |left · right|. A correct kernel stays below 1; a wrong or skipped
 * column, row or rank term is off by about the element's whole update, hundreds of times more.
 */
function worstError(
  got: Float32Array,
  base: Float32Array,
  shape: { rows: number; cols: number; rank: number },
  left: Float32Array,
  right: Float32Array,
  scale: number,
): number {
  const { rows, cols, rank } = shape;
  let worst = 0;
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      let sum = 0;
      let magnitude = 0;
      for (let k = 0; k < rank; k++) {
        const term = left[i * rank + k]! * right[k * cols + j]!;
        sum += term;
        magnitude += Math.abs(term);
      }
      const expected = base[i * cols + j]! + scale * sum;
      const allowed = (rank + 2) * 2 ** -23 * (Math.abs(base[i * cols + j]!) + Math.abs(scale) * magnitude);
      worst = Math.max(worst, Math.abs(got[i * cols + j]! - expected) / allowed);
    }
  }
  return worst;
}

describe("WebAssembly SIMD low-rank kernel", () => {
  test("is available on Node 20", () => {
    expect(wasmKernel()).not.toBeNull();
  });

  // Columns: 16 at a time, then 4, then one by one, so odd widths (1, 3, 5, 17, 19, 35, 77...) reach
  // each tail; ranks not multiples of 4; several row blocks of 256 KB (the last ones partial).
  test.each([
    [1, 1, 1],
    [3, 5, 2],
    [7, 3, 5],
    [5, 17, 3],
    [2, 19, 7],
    [9, 35, 1],
    [4, 20, 4],
    [300, 77, 1],
    [129, 1000, 3],
    [64, 4099, 8],
    [1000, 130, 16],
    [257, 513, 7],
    [2048, 96, 64],
  ])("matches a float64 JavaScript loop for a [%i × %i] target, rank %i", (rows, cols, rank) => {
    const base = random(rows * cols, 1);
    const left = random(rows * rank, 2);
    const right = random(rank * cols, 3);
    const got = base.slice();
    addLowRankProductWasm(wasmKernel()!, got, rows, cols, rank, left, right, 0.37);
    expect(worstError(got, base, { rows, cols, rank }, left, right, 0.37)).toBeLessThan(1);
  });
});
