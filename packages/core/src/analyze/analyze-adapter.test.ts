import { readFile } from "node:fs/promises";
import { describe, expect, test } from "vitest";
import { adapterKey } from "../adapter/adapter-keys.js";
import type { LoraAdapter } from "../adapter/lora-adapter.js";
import { readAdapter } from "../adapter/read-adapter.js";
import { Checkpoint } from "../formats/checkpoint.js";
import { float32Tensor, toFloat32 } from "../formats/safetensors/dtype.js";
import { readSafetensors } from "../formats/safetensors/safetensors-file.js";
import { requireFixture } from "../testing/fixtures.js";
import { analyzeAdapter, effectiveRank, type ModuleAnalysis } from "./analyze-adapter.js";
import { denseProduct, frobenius, referenceSingularValues, transposeDense } from "./reference-svd.test-helper.js";
import { summarizeModule } from "./summarize-module.js";

const ADAPTERS = [
  ["gpt2-tiny-lora", "gpt2"],
  ["llama-tiny-lora", "llama"],
  ["llama-tiny-embed-lora", "llama_embed"],
  ["gpt2-tiny-dora", "gpt2_dora"],
  ["roberta-tiny-lora", "roberta"],
] as const;

async function manifestScalings(key: string): Promise<Record<string, { scaling: number }>> {
  const manifest = JSON.parse(await readFile(requireFixture("manifest.json"), "utf8"));
  return manifest.fixtures[key].lora_modules;
}

/** The factors of one module as float32, by their PEFT keys. */
function factors(adapter: LoraAdapter, name: string): { A: Float32Array; B: Float32Array; r: number; inF: number; out: number } {
  const a = adapter.tensors.get(adapterKey(name, "lora_A")) ?? adapter.tensors.get(adapterKey(name, "lora_embedding_A"))!;
  const b = adapter.tensors.get(adapterKey(name, "lora_B")) ?? adapter.tensors.get(adapterKey(name, "lora_embedding_B"))!;
  return { A: toFloat32(a), B: toFloat32(b), r: a.shape[0]!, inF: a.shape[1]!, out: b.shape[0]! };
}

describe("analyzeAdapter on the fixtures", () => {
  test.each(ADAPTERS)(
    "%s: σ(scaling·B·A) equal a one-sided Jacobi SVD of the dense float64 ΔW within 1e-5 relative, scaling as " + "PEFT's",
    async (dir, key) => {
      const adapter = await readAdapter(requireFixture(dir));
      const scalings = await manifestScalings(key);
      const report = await analyzeAdapter(adapter);
      expect(report.map((m) => m.name).sort()).toEqual(Object.keys(scalings).sort());
      for (const m of report) {
        expect(m.scaling, m.name).toBeCloseTo(scalings[m.name]!.scaling, 12);
        const f = factors(adapter, m.name);
        // ΔW = scaling·B·A, [out, in], in float64 by the triple loop.
        const reference = referenceSingularValues(denseProduct(f.B, f.A, f.out, f.r, f.inF, scalings[m.name]!.scaling), f.out, f.inF).slice(0, f.r);
        expect(m.singularValues).toHaveLength(f.r);
        m.singularValues.forEach((s, i) => expect(Math.abs(s - reference[i]!), `${m.name} σ${i + 1}`).toBeLessThanOrEqual(1e-5 * reference[0]!));
        expect(m.deltaNorm).toBeCloseTo(Math.hypot(...reference), 10);
        expect(m.dora).toBe(key === "gpt2_dora");
        expect(m.kind).toBe(m.name.endsWith("embed_tokens") ? "embedding" : "linear");
      }
    },
  );

  test("gpt2-tiny-lora: the spectrum of the stored merged − base weights (float32, an independent ΔW) agrees within 1e-4 relative", async () => {
    const report = await analyzeAdapter(await readAdapter(requireFixture("gpt2-tiny-lora")));
    const cases = (await readSafetensors(requireFixture("cases", "gpt2-tiny-lora.safetensors"))).tensors;
    const base = await Checkpoint.open(requireFixture("gpt2-tiny"));
    try {
      for (const m of report) {
        const w = await base.readFloat32(`${m.name}.weight`);
        const merged = toFloat32(cases.get(`merged.${m.name}.weight`)!);
        // Conv1D stores [in, out]: the stored difference is ΔWᵀ, whose singular values are ΔW's.
        expect(m.weightShape).toEqual([m.inFeatures, m.outFeatures]);
        const delta = Float64Array.from(merged, (x, i) => x - w[i]!);
        const reference = referenceSingularValues(transposeDense(delta, m.inFeatures, m.outFeatures), m.outFeatures, m.inFeatures);
        m.singularValues.forEach((s, i) => expect(Math.abs(s - reference[i]!), m.name).toBeLessThanOrEqual(1e-4 * reference[0]!));
      }
    } finally {
      await base.close();
    }
  });

  test("with the base checkpoint: relativeNorm = ‖ΔW‖_F / ‖W‖_F, weightShape is the stored shape", async () => {
    const adapter = await readAdapter(requireFixture("llama-tiny-lora"));
    const base = await Checkpoint.open(requireFixture("llama-tiny"));
    try {
      const report = await analyzeAdapter(adapter, { base });
      const info = base.tensorInfo();
      for (const m of report) {
        const f = factors(adapter, m.name);
        const delta = denseProduct(f.B, f.A, f.out, f.r, f.inF, m.scaling);
        expect(m.relativeNorm!, m.name).toBeCloseTo(frobenius(delta) / frobenius(await base.readFloat32(`${m.name}.weight`)), 10);
        expect(m.weightShape).toEqual(info.get(`${m.name}.weight`)!.shape);
      }
      const down = report.find((m) => m.name === "model.layers.1.mlp.down_proj")!;
      expect([down.r, down.scaling, down.singularValues.length]).toEqual([4, 8, 4]);
    } finally {
      await base.close();
    }
  });

  test("an embedding LoRA: weightShape is [num_embeddings, dim]; a map of tensors works as the base", async () => {
    const adapter = await readAdapter(requireFixture("llama-tiny-embed-lora"));
    const base = await Checkpoint.open(requireFixture("llama-tiny"));
    const weight = await base.readFloat32("model.embed_tokens.weight");
    const shape = base.tensorInfo().get("model.embed_tokens.weight")!.shape;
    await base.close();
    const only = { config: adapter.config, tensors: new Map([...adapter.tensors].filter(([k]) => k.includes("embed_tokens"))) };
    const [m] = await analyzeAdapter(only, { base: new Map([["model.embed_tokens.weight", float32Tensor(weight, shape)]]) });
    if (m === undefined) throw new Error("analyzeAdapter returned no module");
    expect(m.kind).toBe("embedding");
    expect(m.weightShape).toEqual(shape);
    expect(m.relativeNorm).toBeGreaterThan(0);
  });

  test("errors: an energy outside (0, 1], a base without the module's weight", async () => {
    const adapter = await readAdapter(requireFixture("gpt2-tiny-lora"));
    for (const energy of [0, 1.5, Number.NaN]) {
      const error = await analyzeAdapter(adapter, { energies: [energy] }).catch((e) => e);
      expect(error.code).toBe("USAGE");
    }
    const error = await analyzeAdapter(adapter, { base: new Map() }).catch((e) => e);
    expect(error.code).toBe("ADAPTER_INVALID");
    expect(error.message).toMatch(/transformer\.h\.0\.attn\.c_attn\.weight/);
  });
});

describe("effectiveRank: smallest k with σ₁² + … + σ_k² ≥ e·Σσ²", () => {
  test.each([
    [[3, 1], 0.9, 1], // 9 ≥ 0.9·10
    [[3, 1], 0.91, 2],
    [[3, 1], 1, 2],
    [[2, 2, 2, 2], 0.5, 2],
    [[2, 2, 2, 2], 0.51, 3],
    [[1, 0, 0], 0.99, 1],
    [[0, 0], 0.9, 0],
  ])("σ = %j, e = %d → %i", (sigma, energy, rank) => {
    expect(effectiveRank(sigma, energy)).toBe(rank);
  });
});

describe("summarizeModule", () => {
  const base: ModuleAnalysis = {
    name: "transformer.h.0.attn.c_attn",
    kind: "linear",
    r: 8,
    inFeatures: 64,
    outFeatures: 192,
    weightShape: [64, 192],
    scaling: 2,
    dora: false,
    singularValues: [],
    deltaNorm: 1,
    effectiveRanks: [
      { energy: 0.9, rank: 2 },
      { energy: 0.99, rank: 5 },
    ],
  };
  test("states the effective ranks, and the relative norm when known", () => {
    expect(summarizeModule(base)).toBe("transformer.h.0.attn.c_attn: 90% of the update's energy lies in the top 2 of 8 directions, 99% in the top 5.");
    expect(summarizeModule({ ...base, relativeNorm: 0.01234 })).toBe(
      "transformer.h.0.attn.c_attn: 90% of the update's energy lies in the top 2 of 8 directions, 99% in the top 5; its norm is 1.2% of the base weight's.",
    );
    expect(summarizeModule({ ...base, deltaNorm: 0 })).toBe("transformer.h.0.attn.c_attn: the update is zero.");
  });

  test("on a fixture module: the numbers come from analyzeAdapter", async () => {
    const [m] = await analyzeAdapter(await readAdapter(requireFixture("gpt2-tiny-lora")), { energies: [0.9] });
    if (m === undefined) throw new Error("analyzeAdapter returned no module");
    expect(summarizeModule(m)).toBe(`${m.name}: 90% of the update's energy lies in the top ${effectiveRank(m.singularValues, 0.9)} of 4 directions.`);
  });
});
