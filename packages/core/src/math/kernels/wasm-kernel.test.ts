import { describe, expect, test } from "vitest";
import { SeededRandom } from "../random.js";
import { addLowRankProduct } from "../low-rank-update.js";
import { wasmKernel } from "./wasm-kernel.js";

function random(n: number, seed: number): Float32Array {
  const rng = new SeededRandom(seed);
  return Float32Array.from({ length: n }, () => rng.normal());
}

describe("WebAssembly SIMD low-rank kernel", () => {
  test("is available on Node 20", () => {
    expect(wasmKernel()).not.toBeNull();
  });

  // Sizes cover the 16-, 4- and 1-column paths, blocks of rows, and ranks that are not multiples of 4.
  test.each([
    [300, 77, 1], [129, 1000, 3], [64, 4099, 8], [1000, 130, 16], [257, 513, 7], [2048, 96, 64],
  ])("matches the float64 loop for a [%i × %i] target, rank %i", (rows, cols, rank) => {
    const base = random(rows * cols, 1);
    const left = random(rows * rank, 2);
    const right = random(rank * cols, 3);
    const viaWasm = base.slice();
    const viaJs = base.slice();
    addLowRankProduct({ target: viaWasm, rows, cols, rank, left, right, scale: 0.37 });
    addLowRankProduct({ target: viaJs, rows, cols, rank, left, right, scale: 0.37, forceJs: true });
    let worst = 0;
    for (let i = 0; i < viaJs.length; i++) worst = Math.max(worst, Math.abs(viaWasm[i] - viaJs[i]) / (1 + Math.abs(viaJs[i])));
    // float32 accumulation against float64: a few ulps per term.
    expect(worst).toBeLessThan(rank * 4e-7);
    expect(worst).toBeGreaterThanOrEqual(0);
    let changed = 0;
    for (let i = 0; i < base.length; i++) if (viaWasm[i] !== base[i]) changed++;
    expect(changed).toBeGreaterThan(base.length * 0.99);
  });
});
