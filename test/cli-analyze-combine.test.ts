import { mkdtempSync, readFileSync, rmSync, existsSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { readAdapter, toFloat32, type LoraAdapter } from "@lowrank/core";
import { adapterKey, moduleHyperparameters } from "@lowrank/core/internal";
import { requireFixture } from "@lowrank/core/testing";
import { lowrank } from "./cli-helpers.js";

const tmp = mkdtempSync(path.join(os.tmpdir(), "lowrank-analyze-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** scaling·B·A of one module as a dense float64 [out, in] matrix. */
function delta(adapter: LoraAdapter, module: string): { m: Float64Array; out: number; in: number } {
  const A = toFloat32(adapter.tensors.get(adapterKey(module, "lora_A"))!);
  const Bt = adapter.tensors.get(adapterKey(module, "lora_B"))!;
  const B = toFloat32(Bt);
  const out = Bt.shape[0]!;
  const r = Bt.shape[1]!;
  const inF = A.length / r;
  const s = moduleHyperparameters(adapter.config, module).scaling;
  const m = new Float64Array(out * inF);
  for (let o = 0; o < out; o++) for (let k = 0; k < r; k++) for (let i = 0; i < inF; i++) m[o * inF + i]! += s * B[o * r + k]! * A[k * inF + i]!;
  return { m, out, in: inF };
}

/** Singular values by power iteration with deflation on MᵀM (independent of the product's SVD code). */
function powerSingularValues(m: Float64Array, rows: number, cols: number, count: number): number[] {
  const gram = new Float64Array(cols * cols);
  for (let i = 0; i < cols; i++)
    for (let j = 0; j < cols; j++) {
      let s = 0;
      for (let r = 0; r < rows; r++) s += m[r * cols + i]! * m[r * cols + j]!;
      gram[i * cols + j] = s;
    }
  const values: number[] = [];
  for (let n = 0; n < count; n++) {
    let v = Float64Array.from({ length: cols }, (_, i) => Math.sin(i + 1 + n));
    let lambda = 0;
    for (let it = 0; it < 3000; it++) {
      const w = new Float64Array(cols);
      for (let i = 0; i < cols; i++) for (let j = 0; j < cols; j++) w[i]! += gram[i * cols + j]! * v[j]!;
      const norm = Math.hypot(...w);
      if (norm === 0) break;
      const next = w.map((x) => x / norm);
      const change = Math.abs(norm - lambda);
      lambda = norm;
      v = next;
      if (change < 1e-15 * norm && it > 50) break;
    }
    values.push(Math.sqrt(lambda));
    for (let i = 0; i < cols; i++) for (let j = 0; j < cols; j++) gram[i * cols + j]! -= lambda * v[i]! * v[j]!;
  }
  return values;
}

describe("lowrank analyze", () => {
  test("--json: per module the singular values of the scaled ΔW, matching power iteration within 1e-5 relative", async () => {
    const dir = requireFixture("gpt2-tiny-lora");
    const run = lowrank(["analyze", dir, "--json", "--base", requireFixture("gpt2-tiny")]);
    expect(run.status, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout);
    const adapter = await readAdapter(dir);
    expect(report.modules.map((m: { name: string }) => m.name)).toContain("transformer.h.0.attn.c_attn");
    expect(report.modules).toHaveLength(6);
    for (const m of report.modules) {
      const d = delta(adapter, m.name);
      const expected = powerSingularValues(d.m, d.out, d.in, m.singular_values.length);
      m.singular_values.forEach((s: number, i: number) => expect(Math.abs(s - expected[i]!) / expected[0]!, `${m.name} σ${i + 1}`).toBeLessThanOrEqual(1e-5));
      for (let i = 1; i < m.singular_values.length; i++) expect(m.singular_values[i]).toBeLessThanOrEqual(m.singular_values[i - 1]);
      expect(m.relative_norm).toBeGreaterThan(0);
      expect(m.summary).toMatch(/of the update's energy lies in the top \d of 4 directions/);
    }
  });

  test("--against itself: φ(i, i) = 1; --plot writes a heatmap", () => {
    const dir = requireFixture("llama-tiny-lora");
    const plot = path.join(tmp, "phi.svg");
    const run = lowrank(["analyze", dir, "--against", dir, "--json", "--plot", plot]);
    expect(run.status, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout);
    expect(report.against.modules).toHaveLength(14);
    for (const { phi } of report.against.modules) for (let i = 0; i < phi.length; i++) expect(phi[i][i]).toBeCloseTo(1, 9);
    expect(readFileSync(plot, "utf8")).toMatch(/^<svg[^>]*>[\s\S]*Subspace similarity/);
    const text = lowrank(["analyze", dir, "--against", requireFixture("llama-tiny-embed-lora")]);
    expect(text.status, text.stderr).toBe(0);
    expect(text.stdout).toContain("subspace similarity with");
  });
});

describe("lowrank merge --combination (PEFT's add_weighted_adapter)", () => {
  // biome-ignore format: keeps the line within 160 bytes (the title has multi-byte characters)
  const catExactTitle =
    "cat is exact: the new ΔW = Σ wᵢ·sᵢ·Bᵢ·Aᵢ; svd at full rank reproduces Σ wᵢ·sᵢ·ΔWᵢ (PEFT weights the deltas by wᵢ·sᵢ)";
  test(catExactTitle, async () => {
    const a = requireFixture("gpt2-tiny-lora");
    const b = requireFixture("gpt2-tiny-lora-bin");
    const weights = [0.7, -0.3];
    const adapters = [await readAdapter(a), await readAdapter(b)];
    const modules = ["transformer.h.0.attn.c_attn", "transformer.h.1.mlp.c_proj"];
    for (const [combination, extra] of [
      ["cat", []],
      ["svd", ["--svd-rank", "8"]],
    ] as const) {
      const out = path.join(tmp, combination);
      const run = lowrank(["merge", "--adapter", a, "--adapter", b, "--weights", weights.join(","), "--combination", combination, ...extra, "--out", out]);
      expect(run.status, run.stderr).toBe(0);
      expect(JSON.parse(readFileSync(path.join(out, "combination.json"), "utf8"))).toMatchObject({ combination, weights });
      const combined = await readAdapter(out);
      expect(combined.config.r).toBe(8);
      for (const module of modules) {
        const got = delta(combined, module).m;
        const want = new Float64Array(got.length);
        adapters.forEach((ad, i) => {
          const d = delta(ad, module).m;
          const s = moduleHyperparameters(ad.config, module).scaling;
          const w = combination === "cat" ? weights[i]! : weights[i]! * s;
          for (let k = 0; k < d.length; k++) want[k]! += w * d[k]!;
        });
        let worst = 0;
        for (let k = 0; k < got.length; k++) worst = Math.max(worst, Math.abs(got[k]! - want[k]!));
        expect(worst, `${combination} ${module}`).toBeLessThanOrEqual(1e-5);
      }
    }
  });

  test("bad combinations are one-line usage errors and write nothing", () => {
    const a = requireFixture("gpt2-tiny-lora");
    const out = path.join(tmp, "never");
    const cases: [string[], RegExp][] = [
      [["--adapter", a, "--adapter", a, "--combination", "average"], /--combination must be one of linear, cat, svd/],
      [["--adapter", a, "--adapter", a, "--weights", "1"], /--weights has 1 values for 2 --adapter folders/],
      [["--adapter", a, "--adapter", a, "--weights", "1,x"], /--weights must be a number, got "x"/],
      [["--adapter", a, "--adapter", a, "--base", requireFixture("gpt2-tiny")], /--model merges into a model; with --combination the output is a new adapter/],
      [["--adapter", a, "--adapter", a, "--combination", "ties"], /density/],
      [["--adapter", a, "--adapter", requireFixture("gpt2-tiny-dora"), "--combination", "linear"], /DoRA/],
      [["--adapter", a, "--density", "0.5"], /--density only applies with --combination/],
    ];
    for (const [args, message] of cases) {
      const run = lowrank(["merge", ...args, "--out", out]);
      expect(run.status, args.join(" ")).toBe(2);
      expect(run.stderr.trim().split("\n"), args.join(" ")).toHaveLength(1);
      expect(run.stderr, args.join(" ")).toMatch(message);
      expect(existsSync(out)).toBe(false);
    }
  });
});
