import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { createLoraConfig, type LoraConfigInput } from "../config/lora-config.js";
import { readLoraConfig } from "../config/read-lora-config.js";
import { LowrankError } from "../errors/lowrank-error.js";
import { memoryLogger } from "../logger.js";
import { describeModel } from "../model/describe-model.js";
import type { TensorInfo } from "../model/model-description.js";
import { FIXTURE_PAIRS } from "../testing/fixture-pairs.js";
import { requireFixture } from "../testing/fixtures.js";
import { loadFixtureModel } from "../testing/load-fixture-model.js";
import { checkTargetModule, patternKeyFor } from "./check-target-module.js";
import { resolveTargets } from "./resolve-targets.js";

interface ManifestModule {
  r: number;
  lora_alpha: number;
  scaling: number;
  fan_in_fan_out: boolean | null;
  base_layer: string;
  use_dora?: boolean;
}
const manifest = JSON.parse(readFileSync(requireFixture("manifest.json"), "utf8")) as {
  fixtures: Record<string, { lora_modules: Record<string, ManifestModule> }>;
};

describe("targets and scalings match PEFT's for every fixture adapter", () => {
  test.each(FIXTURE_PAIRS.map((p) => [p.adapter, p] as const))("%s", async (_, pair) => {
    const config = await readLoraConfig(requireFixture(pair.adapter, "adapter_config.json"));
    const model = await loadFixtureModel(pair.base);
    const report = resolveTargets(config, model);
    const expected = manifest.fixtures[pair.key]!.lora_modules;
    expect(report.targets.map((t) => t.name).sort()).toEqual(Object.keys(expected).sort());
    for (const t of report.targets) {
      const want = expected[t.name]!;
      expect(t.r, t.name).toBe(want.r);
      expect(t.alpha, t.name).toBe(want.lora_alpha);
      expect(t.scaling, t.name).toBeCloseTo(want.scaling, 12);
      expect(t.kind, t.name).toBe({ Conv1D: "conv1d", Linear: "linear", Embedding: "embedding" }[want.base_layer]);
      if (want.fan_in_fan_out !== null) expect(t.fanInFanOut, t.name).toBe(want.fan_in_fan_out);
      expect(t.useDora, t.name).toBe(want.use_dora ?? false);
    }
  });

  test("modules_to_save are wrapped whole and never targeted", async () => {
    const config = await readLoraConfig(requireFixture("deberta-v2-tiny-lora", "adapter_config.json"));
    const report = resolveTargets(config, await loadFixtureModel("deberta-v2-tiny"));
    expect(report.modulesToSave.sort()).toEqual(["classifier", "pooler"]);
  });
});

/** A GPT-2-like and a LLaMA-like module tree, built from tensor lists alone. */
function gpt2(layers = 3): ReturnType<typeof describeModel> {
  const t = new Map<string, TensorInfo>();
  const f = (name: string, ...shape: number[]) => t.set(name, { dtype: "F32", shape });
  f("transformer.wte.weight", 100, 8);
  f("transformer.wpe.weight", 16, 8);
  for (let i = 0; i < layers; i++) {
    f(`transformer.h.${i}.ln_1.weight`, 8);
    f(`transformer.h.${i}.attn.c_attn.weight`, 8, 24);
    f(`transformer.h.${i}.attn.c_attn.bias`, 24);
    f(`transformer.h.${i}.attn.c_proj.weight`, 8, 8);
    f(`transformer.h.${i}.mlp.c_fc.weight`, 8, 32);
    f(`transformer.h.${i}.mlp.c_proj.weight`, 32, 8);
  }
  f("transformer.ln_f.weight", 8);
  return describeModel({ model_type: "gpt2", architectures: ["GPT2LMHeadModel"] }, t);
}

function llama(): ReturnType<typeof describeModel> {
  const t = new Map<string, TensorInfo>();
  const f = (name: string, ...shape: number[]) => t.set(name, { dtype: "F32", shape });
  f("model.embed_tokens.weight", 100, 8);
  for (let i = 0; i < 2; i++) {
    for (const p of ["q_proj", "k_proj", "v_proj", "o_proj"]) f(`model.layers.${i}.self_attn.${p}.weight`, 8, 8);
    for (const p of ["gate_proj", "up_proj"]) f(`model.layers.${i}.mlp.${p}.weight`, 16, 8);
    f(`model.layers.${i}.mlp.down_proj.weight`, 8, 16);
  }
  f("lm_head.weight", 100, 8);
  return describeModel({ model_type: "llama", architectures: ["LlamaForCausalLM"], tie_word_embeddings: false }, t);
}

const names = (config: LoraConfigInput, model = gpt2()) => resolveTargets(createLoraConfig(config), model).targets.map((t) => t.name);

describe("PEFT's matching rules", () => {
  test("a list entry matches a whole name or a '.'-suffix, not a substring", () => {
    expect(names({ target_modules: ["c_proj"] })).toEqual(expect.arrayContaining(["transformer.h.0.attn.c_proj", "transformer.h.0.mlp.c_proj"]));
    expect(names({ target_modules: ["attn.c_proj"] })).toEqual(["transformer.h.0.attn.c_proj", "transformer.h.1.attn.c_proj", "transformer.h.2.attn.c_proj"]);
    expect(() => names({ target_modules: ["proj"] })).toThrow(/matched no module/);
    expect(names({ target_modules: ["transformer.h.1.attn.c_attn"] })).toEqual(["transformer.h.1.attn.c_attn"]);
  });

  test("a string is a regex that must match the whole name", () => {
    expect(names({ target_modules: ".*h\\.1\\.attn\\.c_(attn|proj)" })).toEqual(["transformer.h.1.attn.c_attn", "transformer.h.1.attn.c_proj"]);
    expect(() => names({ target_modules: "c_attn" })).toThrow(/matched no module/);
  });

  test("layers_to_transform and layers_pattern pick by layer index", () => {
    expect(names({ target_modules: ["c_attn"], layers_to_transform: [0, 2] })).toEqual(["transformer.h.0.attn.c_attn", "transformer.h.2.attn.c_attn"]);
    expect(names({ target_modules: ["c_attn"], layers_to_transform: 1 })).toEqual(["transformer.h.1.attn.c_attn"]);
    expect(names({ target_modules: ["c_attn"], layers_to_transform: [1], layers_pattern: "h" })).toEqual(["transformer.h.1.attn.c_attn"]);
    expect(() => names({ target_modules: ["c_attn"], layers_to_transform: [1], layers_pattern: "layers" })).toThrow(LowrankError);
    expect(names({ target_modules: ["q_proj"], layers_to_transform: [1], layers_pattern: ["blocks", "layers"] }, llama())).toEqual([
      "model.layers.1.self_attn.q_proj",
    ]);
  });

  test("exclude_modules is applied first and reported", () => {
    const logger = memoryLogger();
    const report = resolveTargets(createLoraConfig({ target_modules: ["c_proj"], exclude_modules: ["mlp.c_proj"] }), gpt2(), { logger });
    expect(report.targets.map((t) => t.name)).toEqual(["transformer.h.0.attn.c_proj", "transformer.h.1.attn.c_proj", "transformer.h.2.attn.c_proj"]);
    expect(report.excluded).toEqual(["transformer.h.0.mlp.c_proj", "transformer.h.1.mlp.c_proj", "transformer.h.2.mlp.c_proj"]);
    expect(() => names({ target_modules: ["c_attn"], exclude_modules: ".*c_attn" })).toThrow(/removed by `exclude_modules`/);
    resolveTargets(createLoraConfig({ target_modules: ["c_attn"], exclude_modules: ["nothing"] }), gpt2(), { logger });
    expect(logger.warnings.some((w) => w.includes("excluded no module"))).toBe(true);
  });

  test("all-linear takes every linear layer but the output head", () => {
    expect(new Set(names({ target_modules: "all-linear" }).map((n) => n.split(".").pop()))).toEqual(new Set(["c_attn", "c_proj", "c_fc"]));
    const llamaNames = names({ target_modules: "all-linear" }, llama());
    expect(llamaNames).toHaveLength(14);
    expect(llamaNames).not.toContain("lm_head");
  });

  test("missing target_modules falls back to PEFT's per-architecture defaults", () => {
    expect(names({})).toEqual(["transformer.h.0.attn.c_attn", "transformer.h.1.attn.c_attn", "transformer.h.2.attn.c_attn"]);
    expect(names({}, llama())).toHaveLength(4);
    const unknown = describeModel({ model_type: "mystery" }, new Map([["x.weight", { dtype: "F32" as const, shape: [2, 2] }]]));
    expect(() => names({}, unknown)).toThrow(/no default for model type "mystery"/);
  });

  test("a match that is not a linear, Conv1D or embedding layer is an error", () => {
    expect(() => names({ target_modules: ["attn"] })).toThrow(/"transformer.h.0.attn", which is a container module/);
    expect(() => names({ target_modules: ["ln_1"] })).toThrow(/norm layer/);
  });

  test("no match lists some module names", () => {
    try {
      names({ target_modules: ["q_proj"] });
      throw new Error("expected an error");
    } catch (error) {
      expect((error as LowrankError).code).toBe("TARGET_NOT_FOUND");
      expect((error as LowrankError).message).toMatch(
        /`target_modules` \["q_proj"\] matched no module of the base model; some module names: transformer.wte, /,
      );
    }
  });

  test("fan_in_fan_out follows the layer, with a warning when the config disagrees", () => {
    const logger = memoryLogger();
    const report = resolveTargets(createLoraConfig({ target_modules: ["c_attn"], fan_in_fan_out: false }), gpt2(), { logger });
    expect(report.targets.every((t) => t.fanInFanOut)).toBe(true);
    expect(logger.warnings[0]).toMatch(/fan_in_fan_out/);
  });

  test("the tied lm_head exists as a module and can be targeted", () => {
    const model = gpt2();
    expect(model.byName.get("lm_head")).toMatchObject({
      kind: "linear",
      tiedTo: "transformer.wte",
      weightKey: "transformer.wte.weight",
      inFeatures: 8,
      outFeatures: 100,
    });
    expect(names({ target_modules: ["lm_head"] })).toEqual(["lm_head"]);
  });
});

describe("rank_pattern and alpha_pattern (PEFT 0.12)", () => {
  const cfg = (rank_pattern: Record<string, number>, alpha_pattern: Record<string, number>) =>
    createLoraConfig({ r: 8, lora_alpha: 16, rank_pattern, alpha_pattern });
  test("a key must match the end of the name after a dot", () => {
    expect(patternKeyFor(cfg({ "layers.1.mlp.down_proj": 4 }, {}), "model.layers.1.mlp.down_proj")).toBe("layers.1.mlp.down_proj");
    expect(patternKeyFor(cfg({ "ayers.1.mlp.down_proj": 4 }, {}), "model.layers.1.mlp.down_proj")).toBe("model.layers.1.mlp.down_proj");
    expect(patternKeyFor(cfg({ "layers\\.\\d\\.mlp\\.down_proj": 4 }, {}), "model.layers.1.mlp.down_proj")).toBe("layers\\.\\d\\.mlp\\.down_proj");
  });
  test("the first matching key (rank_pattern first) decides both r and alpha", () => {
    const model = llama();
    const report = resolveTargets(
      createLoraConfig({
        r: 8,
        lora_alpha: 16,
        target_modules: ["q_proj", "v_proj"],
        rank_pattern: { q_proj: 4 },
        alpha_pattern: { "layers.0.self_attn.q_proj": 64, v_proj: 32 },
      }),
      model,
    );
    const by = Object.fromEntries(report.targets.map((t) => [t.name, t]));
    // rank key "q_proj" wins for q_proj, so alpha_pattern's layer-0 key is never consulted (PEFT 0.12).
    expect(by["model.layers.0.self_attn.q_proj"]).toMatchObject({ r: 4, alpha: 16, scaling: 4 });
    expect(by["model.layers.0.self_attn.v_proj"]).toMatchObject({ r: 8, alpha: 32, scaling: 4 });
  });
  test("a full module name works as a key", () => {
    const report = resolveTargets(
      createLoraConfig({ r: 8, lora_alpha: 8, target_modules: ["q_proj"], rank_pattern: { "model.layers.1.self_attn.q_proj": 2 } }),
      llama(),
    );
    expect(report.targets.map((t) => t.r)).toEqual([8, 2]);
  });
  test("rsLoRA divides by √r", () => {
    const report = resolveTargets(createLoraConfig({ r: 16, lora_alpha: 8, target_modules: ["q_proj"], use_rslora: true }), llama());
    expect(report.targets[0]!.scaling).toBe(2);
  });
});

describe("checkTargetModule", () => {
  const base = { target_modules: ["q"], exclude_modules: null, layers_to_transform: null, layers_pattern: null } as const;
  test.each([
    ["a.q", "targeted"],
    ["q", "targeted"],
    ["aq", "unmatched"],
    ["a.q.b", "unmatched"],
  ])("%s → %s", (key, verdict) => {
    expect(checkTargetModule({ ...base, target_modules: [...base.target_modules] }, key)).toBe(verdict);
  });
  test("layer index needs a dotted number followed by a dot", () => {
    expect(checkTargetModule({ ...base, target_modules: ["q"], layers_to_transform: [0] }, "blocks.0.q")).toBe("unmatched");
    expect(checkTargetModule({ ...base, target_modules: ["q"], layers_to_transform: [0] }, "m.blocks.0.q")).toBe("targeted");
  });
});

describe("modules_to_save on a tied head", () => {
  const config = createLoraConfig({ r: 4, target_modules: ["c_attn"], modules_to_save: ["lm_head"] });
  test("is listed when binding an adapter, and refused for training (PEFT trains an untied copy; lowrank would train nothing)", () => {
    expect(resolveTargets(config, gpt2()).modulesToSave).toEqual(["lm_head"]);
    let error: unknown;
    try {
      resolveTargets(config, gpt2(), { training: true });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(LowrankError);
    expect((error as LowrankError).code).toBe("TARGET_UNSUPPORTED");
    expect((error as LowrankError).message).toMatch(
      /^modules_to_save `lm_head`: it is tied to `transformer\.wte` .*; adapt it with LoRA \(target_modules `lm_head`\) or save `transformer\.wte`/,
    );
    // An untied head trains as before.
    const untied = resolveTargets(createLoraConfig({ r: 4, target_modules: ["q_proj"], modules_to_save: ["lm_head"] }), llama(), { training: true });
    expect(untied.modulesToSave).toEqual(["lm_head"]);
  });
});
