import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import fc from "fast-check";
import { LowrankError } from "../errors/lowrank-error.js";
import { memoryLogger } from "../logger.js";
import { FIXTURE_PAIRS } from "../testing/fixture-pairs.js";
import { requireFixture } from "../testing/fixtures.js";
import { checkTargetModule, patternKeyFor } from "../targeting/check-target-module.js";
import { createLoraConfig, type LoraConfig } from "./lora-config.js";
import { parseLoraConfig, parseLoraConfigJson } from "./parse-lora-config.js";
import { serializeLoraConfig } from "./write-lora-config.js";

const base = JSON.parse(readFileSync(requireFixture("gpt2-tiny-lora", "adapter_config.json"), "utf8")) as Record<string, unknown>;

describe("adapter_config.json from PEFT", () => {
  test.each(FIXTURE_PAIRS.map((p) => p.adapter))("%s parses and re-serialises byte for byte", (adapter) => {
    const text = readFileSync(requireFixture(adapter, "adapter_config.json"), "utf8");
    const config = parseLoraConfigJson(text);
    expect(config.peft_type).toBe("LORA");
    expect(serializeLoraConfig(config)).toBe(text);
  });

  test("reads PEFT's fields with their types", () => {
    const config = parseLoraConfigJson(readFileSync(requireFixture("llama-tiny-lora", "adapter_config.json"), "utf8"));
    expect(config.r).toBe(8);
    expect(config.lora_alpha).toBe(16);
    expect(config.use_rslora).toBe(true);
    expect(config.rank_pattern).toEqual({ "layers.1.mlp.down_proj": 4 });
    expect(config.alpha_pattern).toEqual({ "layers.0.self_attn.v_proj": 32 });
    expect(new Set(config.target_modules as string[])).toEqual(new Set(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]));
    expect(config.extra.megatron_core).toBe("megatron.core");
  });

  test("unknown keys from a newer PEFT survive a round trip, with a warning naming them", () => {
    const logger = memoryLogger();
    const text = JSON.stringify({ ...base, use_qalora: false, future_option: { depth: 2.0 } }, null, 2).replace('"depth": 2', '"depth": 2.0');
    const config = parseLoraConfigJson(text, { logger });
    expect(config.extra.future_option).toEqual({ depth: 2 });
    expect(logger.warnings.join("\n")).toContain("future_option");
    expect(logger.warnings.join("\n")).not.toContain("use_qalora");
    const written = serializeLoraConfig(config);
    expect(written).toContain('"future_option": {\n    "depth": 2.0\n  }');
    expect(JSON.parse(written)).toEqual(JSON.parse(text));
  });

  test("accepts the other target_modules forms and init values", () => {
    for (const target_modules of ["all-linear", ".*\\.(q|v)_proj", ["q_proj"], null]) {
      expect(parseLoraConfig({ ...base, target_modules }).target_modules).toEqual(target_modules);
    }
    for (const init_lora_weights of [true, false, "gaussian", "pissa", "olora", "loftq", "pissa_niter_4"]) {
      expect(parseLoraConfig({ ...base, init_lora_weights }).init_lora_weights).toBe(init_lora_weights);
    }
  });
});

describe("bad configs name the field and the value", () => {
  test.each([
    [{ r: -1 }, "`r` must be a positive integer, got -1"],
    [{ r: 0 }, "`r` must be a positive integer, got 0"],
    [{ r: null }, "`r` must be a positive integer, got null"],
    [{ r: 1e400 }, "`r` must be a positive integer"],
    [{ lora_alpha: null }, "`lora_alpha` must be a number, got null"],
    [{ fan_in_fan_out: "yes" }, "`fan_in_fan_out`"],
    [{ use_rslora: 1 }, "`use_rslora`"],
    [{ modules_to_save: "classifier" }, '`modules_to_save` must be a list of module names or null, got "classifier"'],
    [{ target_modules: ["q_proj", 7] }, '`target_modules` must be a list of module names, a regex string or null, got ["q_proj",7]'],
    [{ layers_to_transform: "0" }, '`layers_to_transform` must be a layer index, a list of indexes or null, got "0"'],
    [{ layers_to_transform: [-1] }, "`layers_to_transform.0` must be a layer index, a list of indexes or null, got -1"],
    [{ init_lora_weights: 3 }, "`init_lora_weights`"],
    [{ rank_pattern: ["a"] }, "`rank_pattern` must be an object from module pattern to positive integer rank"],
    [{ rank_pattern: { a: -2 } }, "`rank_pattern.a` must be an object from module pattern to positive integer rank, got -2"],
    [{ alpha_pattern: { a: "x" } }, '`alpha_pattern.a` must be an object from module pattern to number, got "x"'],
    [{ lora_dropout: -0.1 }, "`lora_dropout` must be a number from 0 to 1, got -0.1"],
    [{ task_type: 5 }, "`task_type`"],
    [{ alpha_pattern: { "a[": 16 } }, '`alpha_pattern` key "a[" is not a valid regular expression'],
    [{ rank_pattern: { "q_proj)": 4 } }, '`rank_pattern` key "q_proj)" is not a valid regular expression'],
    [{ exclude_modules: "*.lm_head" }, '`exclude_modules` "*.lm_head" is not a valid regular expression'],
    [{ layers_pattern: "h[", layers_to_transform: [0] }, '`layers_pattern` "h[" is not a valid regular expression'],
    [{ layers_pattern: ["h", "(?<x"], layers_to_transform: [0] }, '`layers_pattern` "(?<x" is not a valid regular expression'],
    [{ peft_type: "IA3" }, '`peft_type` is "IA3"; lowrank reads LoRA adapters ("LORA") only'],
    [{ peft_type: "lora" }, '`peft_type` is "lora"'],
    [{ peft_type: null }, "`peft_type` is null"],
    [{ peft_type: 7 }, "`peft_type` is 7"],
    [{ r: "8" }, '`r` must be a positive integer, got "8"'],
    [{ r: 2.5 }, "`r`"],
    [{ lora_alpha: "sixteen" }, '`lora_alpha` must be a number, got "sixteen"'],
    [{ bias: "some" }, '`bias` must be one of "none", "all", "lora_only", got "some"'],
    [{ lora_dropout: 1.5 }, "`lora_dropout`"],
    [{ target_modules: 3 }, "`target_modules`"],
    [{ rank_pattern: { "a.b": 0 } }, "`rank_pattern.a.b`"],
    [{ rank_pattern: { "(": 4 } }, '`rank_pattern` key "(" is not a valid regular expression'],
    [{ target_modules: "([" }, '`target_modules` "([" is not a valid regular expression'],
    [{ peft_type: "PREFIX_TUNING" }, '`peft_type` is "PREFIX_TUNING"'],
    [{ peft_type: undefined }, "`peft_type` is missing"],
    [{ target_modules: ".*q", layers_to_transform: [0] }, "`layers_to_transform` cannot be used when `target_modules` is a regex string"],
    [{ layers_pattern: "h" }, "`layers_pattern` is set but `layers_to_transform` is not"],
    [{ use_dora: true, lora_bias: true }, "`lora_bias`"],
    [{ use_dora: "yes" }, "`use_dora`"],
  ])("%j", (patch, message) => {
    const raw = { ...base, ...patch };
    const run = () => parseLoraConfig(raw, { label: "cfg/adapter_config.json" });
    expect(run).toThrow(LowrankError);
    try {
      run();
    } catch (error) {
      const e = error as LowrankError;
      expect(e.code).toBe("CONFIG_INVALID");
      expect(e.usage).toBe(true);
      expect(e.message).toContain("cfg/adapter_config.json: ");
      expect(e.message).toContain(message);
      expect(e.message).not.toContain("\n");
    }
  });

  test.each([["[]"], ['"LORA"'], ["null"], ["8"]])("a top-level %s is refused", (text) => {
    expect(() => parseLoraConfigJson(text, { label: "cfg/adapter_config.json" })).toThrow(/^cfg\/adapter_config.json: expected a JSON object$/);
  });

  test("not JSON, duplicate keys", () => {
    expect(() => parseLoraConfigJson("{ r: 8 }")).toThrow(/adapter_config.json: not valid JSON/);
    expect(() => parseLoraConfigJson('{"peft_type": "LORA", "r": 8, "r": 4}')).toThrow(/duplicate key "r"/);
  });
});

describe("new configs", () => {
  test("are written as PEFT 0.12 writes them", () => {
    const config = createLoraConfig({
      r: 4,
      lora_alpha: 8,
      target_modules: ["c_attn", "c_proj"],
      fan_in_fan_out: true,
      task_type: "CAUSAL_LM",
      base_model_name_or_path: "gpt2-tiny",
      init_lora_weights: false,
      inference_mode: true,
    });
    const written = serializeLoraConfig(config);
    // Same key set and values as the fixture PEFT wrote (target order is PEFT's set order, irrelevant).
    expect(JSON.parse(written)).toEqual({ ...base, target_modules: ["c_attn", "c_proj"] });
    expect(written).toContain('"lora_dropout": 0.0');
    expect(written).not.toContain("exclude_modules");
    expect(written.endsWith("}")).toBe(true);
  });

  test("newer keys appear only when set", () => {
    const written = serializeLoraConfig(createLoraConfig({ exclude_modules: ["lm_head"], lora_bias: true }));
    expect(JSON.parse(written)).toMatchObject({ exclude_modules: ["lm_head"], lora_bias: true });
  });
});

/** Matching a config that parsed must never throw (a pattern that got through would crash here). */
function matchEverything(config: LoraConfig, names: readonly string[]): void {
  for (const name of names) {
    checkTargetModule(config, name);
    patternKeyFor(config, name);
  }
}

const MODULE_NAMES = ["model.layers.0.self_attn.q_proj", "transformer.h.1.attn.c_attn", "lm_head", "a.b.c.12.d", "h.3.mlp.c_proj"];

function expectConfigInvalid(error: unknown): void {
  expect(error).toBeInstanceOf(LowrankError);
  expect((error as LowrankError).code).toBe("CONFIG_INVALID");
  expect((error as LowrankError).message).not.toMatch(/[\r\n]/);
}

describe("property: hostile adapter_config.json", () => {
  // Regex-like strings: metacharacters that make many of them invalid.
  const regexish = fc.string({
    unit: fc.constantFrom("a", "h", ".", "*", "+", "?", "(", ")", "[", "]", "{", "}", "\\", "|", "^", "$", "<", ">", "k", "1"),
    maxLength: 8,
  });
  const moduleSuffix = fc.constantFrom("q_proj", "c_attn", "d", "c_proj", "lm_head", "other");
  // Mostly plausible values, sometimes anything at all.
  const mostly = <T>(valid: fc.Arbitrary<T>) => fc.oneof({ arbitrary: valid as fc.Arbitrary<unknown>, weight: 6 }, { arbitrary: fc.anything(), weight: 1 });
  const stringOrList = mostly(fc.oneof(regexish, fc.array(fc.oneof(regexish, moduleSuffix), { maxLength: 3 }), fc.constant(null)));
  const patternMap = mostly(fc.dictionary(regexish, fc.oneof(fc.integer({ min: -2, max: 64 }), fc.double()), { maxKeys: 3 }));
  const fields = fc.record(
    {
      peft_type: mostly(fc.constant("LORA")),
      r: mostly(fc.oneof(fc.integer({ min: -3, max: 64 }), fc.double())),
      lora_alpha: mostly(fc.oneof(fc.integer({ min: -3, max: 64 }), fc.double())),
      target_modules: stringOrList,
      exclude_modules: stringOrList,
      layers_pattern: stringOrList,
      layers_to_transform: mostly(fc.oneof(fc.nat(4), fc.array(fc.integer({ min: -1, max: 4 }), { maxLength: 3 }), fc.constant(null))),
      rank_pattern: patternMap,
      alpha_pattern: patternMap,
      lora_dropout: mostly(fc.double({ min: -0.5, max: 1.5 })),
      use_dora: mostly(fc.boolean()),
      lora_bias: mostly(fc.boolean()),
      init_lora_weights: mostly(fc.oneof(fc.boolean(), fc.constantFrom("gaussian", "pissa"))),
      bias: mostly(fc.constantFrom("none", "all", "lora_only")),
    },
    { requiredKeys: ["peft_type"] },
  );

  test("random field values: a config or CONFIG_INVALID, and a config that parses can be matched", () => {
    let accepted = 0;
    fc.assert(
      fc.property(fields, (raw) => {
        let config: LoraConfig;
        try {
          config = parseLoraConfig(raw);
        } catch (error) {
          expectConfigInvalid(error);
          return;
        }
        accepted++;
        matchEverything(config, MODULE_NAMES);
      }),
      { numRuns: 1500 },
    );
    expect(accepted).toBeGreaterThan(0);
  });

  test("patterns that reach the matcher: every config that parses matches without throwing", () => {
    // Keep the other fields valid so that the regex fields are what decides.
    const patterns = fc.record({
      // Lists of names that the module names end with, so that layers_pattern is used.
      target_modules: fc.oneof(regexish, fc.array(moduleSuffix, { minLength: 1, maxLength: 3 })),
      exclude_modules: fc.oneof(regexish, fc.constant(null)),
      layers_pattern: fc.oneof(regexish, fc.array(regexish, { minLength: 1, maxLength: 2 }), fc.constant(null)),
      rank_pattern: fc.dictionary(regexish, fc.integer({ min: 1, max: 8 }), { maxKeys: 2 }),
      alpha_pattern: fc.dictionary(regexish, fc.integer({ min: 1, max: 8 }), { maxKeys: 2 }),
    });
    let accepted = 0;
    let refused = 0;
    fc.assert(
      fc.property(patterns, (p) => {
        const raw = { ...base, ...p, layers_to_transform: p.layers_pattern === null || typeof p.target_modules === "string" ? null : [0, 1] };
        if (typeof p.target_modules === "string") raw.layers_pattern = null;
        let config: LoraConfig;
        try {
          config = parseLoraConfig(raw);
        } catch (error) {
          refused++;
          expectConfigInvalid(error);
          return;
        }
        accepted++;
        matchEverything(config, MODULE_NAMES);
      }),
      { numRuns: 1500 },
    );
    expect(accepted).toBeGreaterThan(0);
    expect(refused).toBeGreaterThan(0);
  });

  test("corrupted adapter_config.json text (bit flips, truncation, insertions) is a config or CONFIG_INVALID", () => {
    const text = readFileSync(requireFixture("llama-tiny-lora", "adapter_config.json"), "utf8");
    const bytes = Buffer.from(text, "utf8");
    type Edit = { kind: "flip"; bit: number } | { kind: "cut"; at: number } | { kind: "insert"; at: number; text: string };
    const edit: fc.Arbitrary<Edit> = fc.oneof(
      fc.record({ kind: fc.constant("flip" as const), bit: fc.nat(bytes.length * 8 - 1) }),
      fc.record({ kind: fc.constant("cut" as const), at: fc.nat(bytes.length) }),
      fc.record({
        kind: fc.constant("insert" as const),
        at: fc.nat(bytes.length),
        text: fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom("1e999", "-0", '"r": 0,', "[", "\\u0000", '"("', "null,")),
      }),
    );
    let refused = 0;
    fc.assert(
      fc.property(fc.array(edit, { minLength: 1, maxLength: 4 }), (edits) => {
        let b = Buffer.from(bytes);
        for (const e of edits) {
          if (e.kind === "flip") {
            if (e.bit >> 3 < b.length) b[e.bit >> 3]! ^= 1 << (e.bit & 7);
          } else if (e.kind === "cut") b = b.subarray(0, Math.min(e.at, b.length));
          else b = Buffer.concat([b.subarray(0, e.at), Buffer.from(e.text), b.subarray(e.at)]);
        }
        try {
          matchEverything(parseLoraConfigJson(b.toString("utf8")), MODULE_NAMES);
        } catch (error) {
          refused++;
          expectConfigInvalid(error);
        }
      }),
      { numRuns: 1500 },
    );
    expect(refused).toBeGreaterThan(0);
  });
});
