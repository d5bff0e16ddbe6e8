import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { adapterKey, parseAdapterKey } from "../adapter/adapter-keys.js";
import { bindAdapter } from "../adapter/bind-adapter.js";
import type { LoraAdapter } from "../adapter/lora-adapter.js";
import { readAdapter } from "../adapter/read-adapter.js";
import { writeAdapter } from "../adapter/write-adapter.js";
import { bestRankK, denseProduct, frobenius, maxAbs, referenceSingularValues } from "../analyze/reference-svd.test-helper.js";
import { toFloat32 } from "../formats/safetensors/dtype.js";
import { memoryLogger } from "../logger.js";
import { loraDelta } from "../math/merge.js";
import { moduleHyperparameters } from "../targeting/resolve-targets.js";
import { captureLowrankError } from "../testing/capture-error.js";
import { requireFixture } from "../testing/fixtures.js";
import { perturbedAdapter } from "../testing/perturbed-adapter.js";
import { loadFixtureModel } from "../testing/load-fixture-model.js";
import { combineAdapters, type CombineOptions, type WeightedAdapter } from "./combine-adapters.js";

let tmp: string;
let gpt2: LoraAdapter;
let other: LoraAdapter;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "lowrank-combine-"));
  gpt2 = await readAdapter(requireFixture("gpt2-tiny-lora"));
  other = perturbedAdapter(gpt2, { seed: 7, only: "c_attn" });
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

interface Factors {
  A: Float32Array;
  B: Float32Array;
  r: number;
  inF: number;
  out: number;
  scaling: number;
}

/** A module's factors and scaling (from the config, via the project's own rank/alpha lookup). */
function factorsOf(adapter: LoraAdapter, name: string): Factors | undefined {
  const a = adapter.tensors.get(adapterKey(name, "lora_A")) ?? adapter.tensors.get(adapterKey(name, "lora_embedding_A"));
  const b = adapter.tensors.get(adapterKey(name, "lora_B")) ?? adapter.tensors.get(adapterKey(name, "lora_embedding_B"));
  if (!a || !b) return undefined;
  return { A: toFloat32(a), B: toFloat32(b), r: a.shape[0]!, inF: a.shape[1]!, out: b.shape[0]!, scaling: moduleHyperparameters(adapter.config, name).scaling };
}

const modulesOf = (adapter: LoraAdapter): string[] => [
  ...new Set([...adapter.tensors.keys()].map((k) => parseAdapterKey(k)).flatMap((p) => (p && p.role !== "replacement" ? [p.module] : []))),
];

/** scaling·B·A as a dense float64 [out, in] matrix. */
function delta(f: Factors, factor = 1): Float64Array {
  return denseProduct(f.B, f.A, f.out, f.r, f.inF, f.scaling * factor);
}

/** Σᵢ cᵢ(s)·sᵢ·Bᵢ·Aᵢ over the inputs that adapt the module. */
function weightedSum(inputs: readonly WeightedAdapter[], name: string, coefficient: (w: number, s: number) => number): Float64Array {
  let sum: Float64Array | undefined;
  for (const { adapter, weight } of inputs) {
    const f = factorsOf(adapter, name);
    if (!f) continue;
    const d = delta(f, coefficient(weight, f.scaling));
    sum = sum ? sum.map((x, i) => x + d[i]!) : d;
  }
  return sum!;
}

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => maxAbs(Float64Array.from(a, (x, i) => x - b[i]!));

describe("cat", () => {
  test("gpt2-tiny-lora (s = 2) ⊕ a perturbed copy (s = 1, c_attn only): B·A = Σ wᵢ·sᵢ·Bᵢ·Aᵢ within 1e-5, rank 4 + 4", () => {
    const inputs = [
      { adapter: gpt2, weight: 0.7 },
      { adapter: other, weight: -0.4 },
    ];
    const combined = combineAdapters(inputs, { combination: "cat" });
    expect(combined.config).toMatchObject({
      r: 8,
      lora_alpha: 8,
      target_modules: ["c_attn", "c_proj"],
      use_rslora: false,
      fan_in_fan_out: true,
      rank_pattern: {},
      alpha_pattern: {},
    });
    expect(modulesOf(combined).sort()).toEqual(modulesOf(gpt2).sort());
    for (const name of modulesOf(combined)) {
      const f = factorsOf(combined, name)!;
      expect([f.r, f.scaling]).toEqual([8, 1]);
      expect(
        maxDiff(
          delta(f),
          weightedSum(inputs, name, (w) => w),
        ),
        name,
      ).toBeLessThanOrEqual(1e-5);
    }
    // PEFT puts wᵢ·sᵢ on lora_A and leaves lora_B as is; a module only the first adapter has is zero-padded.
    const proj = factorsOf(combined, "transformer.h.0.attn.c_proj")!,
      source = factorsOf(gpt2, "transformer.h.0.attn.c_proj")!;
    expect(
      maxDiff(
        proj.A.subarray(0, 4 * 64),
        source.A.map((x) => x * 0.7 * 2),
      ),
    ).toBeLessThan(1e-6);
    expect(maxAbs(proj.A.subarray(4 * 64))).toBe(0);
  });

  test("llama-tiny-lora (rsLoRA, rank/alpha patterns, r 8) ⊕ llama-tiny-embed-lora (r 4, embedding): exact, loadable, rank 12", async () => {
    const inputs = [
      { adapter: await readAdapter(requireFixture("llama-tiny-lora")), weight: 1 },
      { adapter: await readAdapter(requireFixture("llama-tiny-embed-lora")), weight: 0.5 },
    ];
    const combined = combineAdapters(inputs, { combination: "cat" });
    expect(combined.config).toMatchObject({ r: 12, lora_alpha: 12, use_rslora: false, rank_pattern: {}, alpha_pattern: {} });
    expect(new Set(combined.config.target_modules)).toEqual(
      new Set(["gate_proj", "v_proj", "o_proj", "k_proj", "up_proj", "down_proj", "q_proj", "embed_tokens"]),
    );
    expect(combined.tensors.get(adapterKey("model.embed_tokens", "lora_embedding_A"))!.shape).toEqual([12, 512]);
    // Written, read back and bound to the base like any adapter: every delta (stored layout) is Σ wᵢ·sᵢ·ΔWᵢ.
    const dir = path.join(tmp, "llama-cat");
    await writeAdapter(dir, combined);
    const bound = bindAdapter(await readAdapter(dir), await loadFixtureModel("llama-tiny"));
    expect(bound.modules.map((m) => m.plan.name).sort()).toEqual(modulesOf(combined).sort());
    for (const { plan, factors } of bound.modules) {
      const want = weightedSum(inputs, plan.name, (w) => w); // [out, in]
      const got = loraDelta(factors); // embeddings are stored [in, out]
      const stored =
        factors.layout === "out_in"
          ? want
          : Float64Array.from(got, (_, i) => want[(i % factors.outFeatures) * factors.inFeatures + Math.floor(i / factors.outFeatures)]!);
      expect(maxDiff(got, stored), plan.name).toBeLessThanOrEqual(1e-5 * Math.max(1, maxAbs(want)));
    }
  });
});

describe("linear (PEFT: lora_A and lora_B merged separately with √|w·s|, the sign on A)", () => {
  test("A = Σ sign(wᵢsᵢ)·√|wᵢsᵢ|·Aᵢ and B = Σ √|wᵢsᵢ|·Bᵢ per module, on the two GPT-2 adapters", () => {
    const inputs = [
      { adapter: gpt2, weight: 0.7 },
      { adapter: other, weight: -0.4 },
    ];
    const combined = combineAdapters(inputs, { combination: "linear" });
    expect(combined.config).toMatchObject({ r: 4, lora_alpha: 4, target_modules: ["c_attn", "c_proj"] });
    for (const name of modulesOf(combined)) {
      const got = factorsOf(combined, name)!;
      const wantA = new Float64Array(got.A.length),
        wantB = new Float64Array(got.B.length);
      for (const { adapter, weight } of inputs) {
        const f = factorsOf(adapter, name);
        if (!f) continue;
        const ws = weight * f.scaling;
        f.A.forEach((x, i) => (wantA[i]! += Math.sign(ws) * Math.sqrt(Math.abs(ws)) * x));
        f.B.forEach((x, i) => (wantB[i]! += Math.sqrt(Math.abs(ws)) * x));
      }
      expect(maxDiff(got.A, wantA), name).toBeLessThan(1e-6);
      expect(maxDiff(got.B, wantB), name).toBeLessThan(1e-6);
    }
  });

  test("a module whose rank comes from rank_pattern keeps it through rank_pattern/alpha_pattern (scaling 1), so the file loads", async () => {
    const llama = await readAdapter(requireFixture("llama-tiny-lora"));
    const inputs = [
      { adapter: llama, weight: 0.5 },
      { adapter: llama, weight: 0.25 },
    ];
    const combined = combineAdapters(inputs, { combination: "linear" });
    const down = "model.layers.1.mlp.down_proj";
    expect(combined.config).toMatchObject({ r: 8, lora_alpha: 8, rank_pattern: { [down]: 4 }, alpha_pattern: { [down]: 4 }, use_rslora: false });
    const dir = path.join(tmp, "llama-linear");
    await writeAdapter(dir, combined);
    const bound = bindAdapter(await readAdapter(dir), await loadFixtureModel("llama-tiny"));
    const factors = bound.modules.find((m) => m.plan.name === down)!.factors;
    expect([factors.r, factors.scaling]).toEqual([4, 1]);
    // Same adapter twice: (√(0.5s) + √(0.25s))²·B·A = s·(√0.5 + √0.25)²·B·A.
    const want = delta(factorsOf(llama, down)!, (Math.SQRT1_2 + 0.5) ** 2);
    expect(maxDiff(delta(factorsOf(combined, down)!), want)).toBeLessThanOrEqual(1e-5 * maxAbs(want));
  });

  test('one adapter is always combined linearly (PEFT): even "svd" gives rank r and B·A = w·s·B₁·A₁', () => {
    const combined = combineAdapters([{ adapter: gpt2, weight: 1.5 }], { combination: "svd", svdRank: 2 });
    expect(combined.config.r).toBe(4);
    const name = "transformer.h.1.mlp.c_proj";
    expect(maxDiff(delta(factorsOf(combined, name)!), delta(factorsOf(gpt2, name)!, 1.5))).toBeLessThan(1e-5);
  });

  test("dare_linear at density 1 prunes nothing and equals linear; with density < 1 the seed fixes the masks", () => {
    const inputs = [
      { adapter: gpt2, weight: 0.7 },
      { adapter: other, weight: 0.4 },
    ];
    const bytes = (a: LoraAdapter) => [...a.tensors.values()].map((t) => Buffer.from(t.data).toString("hex")).join();
    expect(bytes(combineAdapters(inputs, { combination: "dare_linear", density: 1 }))).toBe(bytes(combineAdapters(inputs, { combination: "linear" })));
    const run = (seed: number) => bytes(combineAdapters(inputs, { combination: "dare_ties", density: 0.5, seed }));
    expect(run(3)).toBe(run(3));
    expect(run(3)).not.toBe(run(4));
  });
});

describe("svd variants", () => {
  const inputs = () => [
    { adapter: gpt2, weight: 0.7 },
    { adapter: other, weight: -0.4 },
  ];

  // biome-ignore format: keeps the line within 160 bytes (the title has multi-byte characters)
  const svdFullRankTitle =
    "svd at full rank (svdRank 8 = 4 + 4) reproduces PEFT's Σ wᵢ·sᵢ·ΔWᵢ = Σ wᵢ·sᵢ²·Bᵢ·Aᵢ within 1e-5; lora_A has orthonormal rows";
  test(svdFullRankTitle, () => {
    const combined = combineAdapters(inputs(), { combination: "svd", svdRank: 8 });
    expect(combined.config).toMatchObject({ r: 8, lora_alpha: 8 });
    for (const name of modulesOf(combined)) {
      const f = factorsOf(combined, name)!;
      expect(
        maxDiff(
          delta(f),
          weightedSum(inputs(), name, (w, s) => w * s),
        ),
        name,
      ).toBeLessThanOrEqual(1e-5);
      const gram = denseProduct(
        f.A,
        Float64Array.from({ length: f.A.length }, (_, i) => f.A[(i % 8) * f.inF + Math.floor(i / 8)]!),
        8,
        f.inF,
        8,
      );
      const kept = name.includes("c_attn") ? 8 : 4; // c_proj: only the first adapter, rank 4; the rest is zero
      for (let i = 0; i < 8; i++) expect(gram[i * 8 + i], `${name} row ${i}`).toBeCloseTo(i < kept ? 1 : 0, 5);
    }
  });

  test("truncated svd (svdRank 3) is the best rank-3 approximation (reference Jacobi SVD), with Frobenius error √Σ_{i>3} σᵢ²", () => {
    const combined = combineAdapters(inputs(), { combination: "svd", svdRank: 3 });
    for (const name of modulesOf(combined)) {
      const f = factorsOf(combined, name)!;
      const target = weightedSum(inputs(), name, (w, s) => w * s);
      expect(maxDiff(delta(f), bestRankK(target, f.out, f.inF, 3)), name).toBeLessThanOrEqual(1e-5);
      const sigma = referenceSingularValues(target, f.out, f.inF);
      const approximation = delta(f);
      const residual = frobenius(Float64Array.from(target, (x, i) => x - approximation[i]!));
      expect(Math.abs(residual - Math.hypot(...sigma.slice(3))), name).toBeLessThanOrEqual(1e-5);
    }
  });

  test("svd_clamp q: every factor entry is clamped to [−h, h], h = the q-quantile (linear interpolation) of all entries of U·S and Vᵀ", () => {
    const plain = combineAdapters(inputs(), { combination: "svd", svdRank: 3 });
    for (const q of [0.95, 0.5, 0.1]) {
      const clamped = combineAdapters(inputs(), { combination: "svd", svdRank: 3, svdClamp: q });
      for (const name of modulesOf(plain)) {
        const p = factorsOf(plain, name)!,
          c = factorsOf(clamped, name)!;
        const all = [...p.B, ...p.A].sort((x, y) => x - y);
        const at = q * (all.length - 1),
          lo = Math.floor(at);
        const h = all[lo]! + (all[Math.min(lo + 1, all.length - 1)]! - all[lo]!) * (at - lo);
        // torch.clamp(x, −h, h) = min(max(x, −h), h); when h < 0 every entry becomes h.
        const clamp = (x: number) => Math.min(Math.max(x, -h), h);
        expect(maxDiff(c.B, p.B.map(clamp)), `${name} q ${q}`).toBeLessThan(1e-7);
        expect(maxDiff(c.A, p.A.map(clamp)), `${name} q ${q}`).toBeLessThan(1e-7);
        if (q === 0.1) expect(h).toBeLessThan(0);
      }
    }
  });

  // biome-ignore format: keeps the line within 160 bytes (the title has multi-byte characters)
  const magnitudePruneSvdTitle =
    "magnitude_prune_svd: the best rank-4 approximation of Σ wᵢsᵢ·prune(sᵢBᵢAᵢ) (top ⌊density·n⌋ entries by |x|), on the dense route";
  test(magnitudePruneSvdTitle, () => {
    const combined = combineAdapters(inputs(), { combination: "magnitude_prune_svd", density: 0.3, svdRank: 4 });
    for (const name of ["transformer.h.0.attn.c_attn", "transformer.h.1.mlp.c_proj"]) {
      const f = factorsOf(combined, name)!;
      const target = new Float64Array(f.out * f.inF);
      for (const { adapter, weight } of inputs()) {
        const g = factorsOf(adapter, name);
        if (!g) continue;
        const d = delta(g);
        const threshold = [...d].map(Math.abs).sort((x, y) => y - x)[Math.floor(0.3 * d.length) - 1]!;
        d.forEach((x, i) => (target[i]! += Math.abs(x) >= threshold ? weight * g.scaling * x : 0));
      }
      expect(maxDiff(delta(f), bestRankK(target, f.out, f.inF, 4)), name).toBeLessThanOrEqual(1e-5);
    }
  });
});

describe("refusals, with PEFT's conditions", () => {
  let llama: LoraAdapter;
  let embed: LoraAdapter;
  beforeAll(async () => {
    llama = await readAdapter(requireFixture("llama-tiny-lora"));
    embed = await readAdapter(requireFixture("llama-tiny-embed-lora"));
  });
  const combine = (inputs: WeightedAdapter[], options: CombineOptions) => captureLowrankError(() => combineAdapters(inputs, options));

  test.each(["linear", "ties", "dare_linear", "dare_ties", "magnitude_prune"] as const)(
    "%s needs equal ranks: r 8 (max of r and rank_pattern) vs r 4 → USAGE naming both",
    (combination) => {
      const error = combine(
        [
          { adapter: llama, weight: 1 },
          { adapter: embed, weight: 1, name: "embed" },
        ],
        { combination, density: 0.5 },
      );
      expect(error.code).toBe("USAGE");
      expect(error.message).toMatch(/adapter 1 has r = 8 and embed has r = 4/);
    },
  );

  test(
    "target_modules as a regex string in one adapter and a list in the other → CONFIG_INVALID (cat and linear alike); two strings are joined as " + "(a)|(b)",
    () => {
      const regex = { ...other, config: { ...other.config, target_modules: ".*c_attn" } };
      for (const combination of ["cat", "linear"] as const) {
        const error = combine(
          [
            { adapter: gpt2, weight: 1 },
            { adapter: regex, weight: 1 },
          ],
          { combination },
        );
        expect([error.code, error.message]).toEqual(["CONFIG_INVALID", expect.stringMatching(/regex string in adapter 2/)]);
      }
      const both = combineAdapters(
        [
          { adapter: { ...gpt2, config: { ...gpt2.config, target_modules: ".*\\.c_(attn|proj)" } }, weight: 1 },
          { adapter: regex, weight: 1 },
        ],
        { combination: "cat" },
      );
      expect(both.config.target_modules).toBe("(.*\\.c_(attn|proj))|(.*c_attn)");
      expect(both.tensors.size).toBe(12);
    },
  );

  test.each([
    [{ combination: "mean" }, /unknown `combination` "mean"/],
    [{ combination: "ties" }, /"ties" needs `density`/],
    [{ combination: "ties", density: 0 }, /`density` is 0/],
    [{ combination: "dare_linear", density: 1.5 }, /`density` is 1.5/],
    [{ combination: "svd", svdRank: 0 }, /`svdRank` is 0/],
    [{ combination: "svd", svdClamp: 1.5 }, /`svdClamp` is 1.5/],
    [{ combination: "ties", density: 0.5, majoritySignMethod: "median" }, /`majoritySignMethod` is "median"/],
    [{ combination: "svd", svdRank: 65 }, /SVD rank 65 exceeds module "transformer.h.0.attn.c_attn"'s smaller side \(192 × 64\)/],
  ])("options %j → USAGE", (options, message) => {
    const error = combine(
      [
        { adapter: gpt2, weight: 1 },
        { adapter: other, weight: 1 },
      ],
      options as CombineOptions,
    );
    expect([error.code, error.message]).toEqual(["USAGE", expect.stringMatching(message)]);
  });

  test('one adapter is combined linearly, so "ties" then needs no density (PEFT)', () => {
    expect(combineAdapters([{ adapter: gpt2, weight: 1 }], { combination: "ties" }).config.r).toBe(4);
  });

  test("no adapters, or a weight that is not finite → USAGE", () => {
    expect(combine([], { combination: "cat" }).code).toBe("USAGE");
    expect(combine([{ adapter: gpt2, weight: Number.NaN }], { combination: "cat" }).message).toMatch(/weight of adapter 1 is NaN/);
  });

  test("a DoRA adapter → ADAPTER_INVALID (PEFT would start its magnitude from the base weights)", async () => {
    const dora = await readAdapter(requireFixture("gpt2-tiny-dora"));
    const error = combine(
      [
        { adapter: gpt2, weight: 1 },
        { adapter: dora, weight: 1 },
      ],
      { combination: "cat" },
    );
    expect([error.code, error.message]).toEqual(["ADAPTER_INVALID", expect.stringMatching(/adapter 2 is a DoRA adapter/)]);
  });

  test(
    "two adapters with their own copy of one module (modules_to_save) → CONFIG_INVALID; one alone is dropped with a warning, as PEFT's fresh " +
      "copy of the base module",
    async () => {
      const roberta = await readAdapter(requireFixture("roberta-tiny-lora"));
      const error = combine(
        [
          { adapter: roberta, weight: 1 },
          { adapter: roberta, weight: 1 },
        ],
        { combination: "cat" },
      );
      expect([error.code, error.message]).toEqual(["CONFIG_INVALID", expect.stringMatching(/adapter 1 and adapter 2 both save their own "classifier.dense"/)]);
      const plain = { ...roberta, tensors: new Map([...roberta.tensors].filter(([k]) => k.includes("lora_"))) };
      const logger = memoryLogger();
      const combined = combineAdapters(
        [
          { adapter: roberta, weight: 1 },
          { adapter: plain, weight: 1 },
        ],
        { combination: "cat", logger },
      );
      expect([...combined.tensors.keys()].every((k) => k.includes("lora_"))).toBe(true);
      expect(combined.config.modules_to_save).toEqual(roberta.config.modules_to_save);
      expect(logger.warnings).toEqual([expect.stringMatching(/adapter 1's modules_to_save tensors are not carried over/)]);
    },
  );
});
