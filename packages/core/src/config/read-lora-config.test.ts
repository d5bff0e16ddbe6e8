import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { LowrankError } from "../errors/lowrank-error.js";
import { memoryLogger } from "../logger.js";
import { FIXTURE_PAIRS } from "../testing/fixture-pairs.js";
import { requireFixture } from "../testing/fixtures.js";
import { createLoraConfig } from "./lora-config.js";
import { parseLoraConfig, parseLoraConfigJson } from "./read-lora-config.js";
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
    [{ r: "8" }, '`r` must be a positive integer, got "8"'],
    [{ r: 2.5 }, "`r`"],
    [{ lora_alpha: "sixteen" }, '`lora_alpha` must be a number, got "sixteen"'],
    [{ bias: "some" }, '`bias` must be one of "none", "all", "lora_only", got "some"'],
    [{ lora_dropout: 1.5 }, "`lora_dropout`"],
    [{ target_modules: 3 }, "`target_modules`"],
    [{ rank_pattern: { "a.b": 0 } }, "`rank_pattern.a.b`"],
    [{ rank_pattern: { "(": 4 } }, "`rank_pattern` key \"(\" is not a valid regular expression"],
    [{ target_modules: "([" }, "`target_modules` \"([\" is not a valid regular expression"],
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

  test("not JSON, duplicate keys", () => {
    expect(() => parseLoraConfigJson("{ r: 8 }")).toThrow(/adapter_config.json: not valid JSON/);
    expect(() => parseLoraConfigJson('{"peft_type": "LORA", "r": 8, "r": 4}')).toThrow(/duplicate key "r"/);
  });
});

describe("new configs", () => {
  test("are written as PEFT 0.12 writes them", () => {
    const config = createLoraConfig({ r: 4, lora_alpha: 8, target_modules: ["c_attn", "c_proj"], fan_in_fan_out: true, task_type: "CAUSAL_LM", base_model_name_or_path: "gpt2-tiny", init_lora_weights: false, inference_mode: true });
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
