import { describe, expect, test } from "vitest";
import { adapterKey } from "../adapter/adapter-keys.js";
import type { LoraAdapter } from "../adapter/lora-adapter.js";
import { readAdapter } from "../adapter/read-adapter.js";
import { createLoraConfig } from "../config/lora-config.js";
import { float32Tensor, toFloat32 } from "../formats/safetensors/dtype.js";
import { captureLowrankError } from "../testing/capture-error.js";
import { requireFixture } from "../testing/fixtures.js";
import { jacobiSvd, transposeDense } from "./reference-svd.test-helper.js";
import { subspaceSimilarity } from "./subspace-similarity.js";

const MODULE = "model.layers.0.self_attn.q_proj";

/** An adapter with one Linear module whose lora_A is the given rows (lora_B is irrelevant to φ). */
function adapterWithA(rows: number[][], module = "m"): LoraAdapter {
  const r = rows.length,
    d = rows[0]!.length;
  return {
    config: createLoraConfig({ r, lora_alpha: r, target_modules: [module] }),
    tensors: new Map([
      [adapterKey(module, "lora_A"), float32Tensor(Float32Array.from(rows.flat()), [r, d])],
      [adapterKey(module, "lora_B"), float32Tensor(new Float32Array(2 * r).fill(1), [2, r])],
    ]),
  };
}

/** Top right-singular vectors of A [r, d] from the reference Jacobi SVD of Aᵀ: [d, r], column j = v_j. */
function rightVectors(adapter: LoraAdapter, module: string): { v: Float64Array; r: number; d: number } {
  const t = adapter.tensors.get(adapterKey(module, "lora_A"))!;
  const r = t.shape[0]!,
    d = t.shape[1]!;
  return { v: jacobiSvd(transposeDense(toFloat32(t), r, d), d, r).u, r, d };
}

/** Eq. 4 directly: φ(i, j) = ‖U_iᵀ V_j‖²_F / min(i, j), summing every (u_pᵀ v_q)². */
function referencePhi(a: LoraAdapter, b: LoraAdapter, module: string): number[][] {
  const x = rightVectors(a, module),
    y = rightVectors(b, module);
  return Array.from({ length: x.r }, (_, i) =>
    Array.from({ length: y.r }, (_, j) => {
      let sum = 0;
      for (let p = 0; p <= i; p++)
        for (let q = 0; q <= j; q++) {
          let dot = 0;
          for (let t = 0; t < x.d; t++) dot += x.v[t * x.r + p]! * y.v[t * y.r + q]!;
          sum += dot * dot;
        }
      return sum / Math.min(i + 1, j + 1);
    }),
  );
}

describe("subspaceSimilarity (LoRA paper Eq. 4, right-singular vectors of lora_A)", () => {
  test("an adapter against itself: φ(i, i) = 1 for every i, and the grid is symmetric", async () => {
    const adapter = await readAdapter(requireFixture("llama-tiny-lora"));
    const grid = subspaceSimilarity(adapter, adapter, MODULE);
    expect(grid).toHaveLength(8);
    for (let i = 0; i < 8; i++) {
      expect(grid[i]![i]).toBeCloseTo(1, 12);
      for (let j = 0; j < 8; j++) expect(grid[i]![j]).toBeCloseTo(grid[j]![i]!, 12);
    }
  });

  test("two fixture adapters of ranks 8 and 4 on one base: the 8 × 4 grid equals Eq. 4 computed from a reference SVD", async () => {
    const a = await readAdapter(requireFixture("llama-tiny-lora"));
    const b = await readAdapter(requireFixture("llama-tiny-embed-lora"));
    const grid = subspaceSimilarity(a, b, MODULE);
    const reference = referencePhi(a, b, MODULE);
    expect(grid.map((row) => row.length)).toEqual(Array(8).fill(4));
    grid.forEach((row, i) =>
      row.forEach((phi, j) => {
        expect(Math.abs(phi - reference[i]![j]!), `φ(${i + 1}, ${j + 1})`).toBeLessThan(1e-9);
        expect(phi).toBeGreaterThanOrEqual(0);
        expect(phi).toBeLessThanOrEqual(1 + 1e-12);
      }),
    );
    expect(subspaceSimilarity(a, b, MODULE, { i: 2, j: 3 })).toEqual(grid.slice(0, 2).map((row) => row.slice(0, 3)));
  });

  test("hand-made: A₁ rows 3·e₁, e₂; A₂ row 2·(e₁ + e₃)/√2 → φ(1, 1) = (e₁·(e₁+e₃)/√2)² = 1/2, φ(2, 1) = 1/2", () => {
    const s = Math.SQRT2;
    const grid = subspaceSimilarity(
      adapterWithA([
        [3, 0, 0],
        [0, 1, 0],
      ]),
      adapterWithA([[s, 0, s]]),
      "m",
    );
    expect(grid[0]![0]).toBeCloseTo(0.5, 6);
    expect(grid[1]![0]).toBeCloseTo(0.5, 6);
  });

  test("disjoint subspaces give 0; the same row space in another basis gives φ(r, r) = 1", () => {
    const grid = subspaceSimilarity(
      adapterWithA([
        [1, 0, 0, 0],
        [0, 2, 0, 0],
      ]),
      adapterWithA([
        [0, 0, 1, 0],
        [0, 0, 0, 3],
      ]),
      "m",
    );
    expect(grid.flat().every((x) => Math.abs(x) < 1e-12)).toBe(true);
    const rotated = subspaceSimilarity(
      adapterWithA([
        [1, 2, 0, 1],
        [0, 1, 1, 0],
      ]),
      adapterWithA([
        [1, 3, 1, 1],
        [1, 1, -1, 1],
      ]),
      "m",
    );
    expect(rotated[1]![1]).toBeCloseTo(1, 6);
  });

  test("errors: a module missing from one adapter, a grid size outside 1..r, different input sizes", () => {
    const a = adapterWithA([[1, 0, 0]]);
    expect(captureLowrankError(() => subspaceSimilarity(a, adapterWithA([[1, 0, 0]], "other"), "m")).message).toMatch(/second adapter has no LoRA module "m"/);
    expect(captureLowrankError(() => subspaceSimilarity(a, a, "m", { i: 2 })).code).toBe("USAGE");
    expect(captureLowrankError(() => subspaceSimilarity(a, adapterWithA([[1, 0]]), "m")).code).toBe("SHAPE_MISMATCH");
  });
});
