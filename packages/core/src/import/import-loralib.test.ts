import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { LowrankError } from "../errors/lowrank-error.js";
import { Checkpoint } from "../formats/checkpoint.js";
import { float32Tensor, toFloat32, type Tensor } from "../formats/safetensors/dtype.js";
import { readSafetensors } from "../formats/safetensors/safetensors-file.js";
import { readTorchStateDict } from "../formats/torch/read-torch-state-dict.js";
import { describeModel } from "../model/describe-model.js";
import { mergeCheckpoint } from "../merge/merge-checkpoint.js";
import { maxAbsDiff, requireFixture } from "../testing/fixtures.js";
import { loadFixtureModel } from "../testing/load-fixture-model.js";
import { importLoralib } from "./import-loralib.js";

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "lowrank-loralib-"));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const manifest = JSON.parse(readFileSync(requireFixture("manifest.json"), "utf8"));
const expected = manifest.fixtures.loralib_gpt2.expected_peft_import;

async function loadStateDict(): Promise<Map<string, Tensor>> {
  return new Map(
    [...(await readTorchStateDict(requireFixture("loralib-gpt2", "lora_state_dict.pt")))].map(([k, t]) => [
      k,
      { dtype: t.dtype, shape: t.shape, data: t.data },
    ]),
  );
}

describe("import of the microsoft/LoRA GPT-2 checkpoint", () => {
  test("config and tensor shapes are the PEFT import the fixture expects", async () => {
    const adapter = importLoralib({
      stateDict: await loadStateDict(),
      model: await loadFixtureModel("gpt2-tiny"),
      rank: 4,
      alpha: 32,
      targetModules: ["c_attn"],
      enableLora: [true, true, true],
      fanInFanOut: true,
      baseModelName: "gpt2-tiny",
    });
    for (const [key, value] of Object.entries(expected.adapter_config)) expect((adapter.config as unknown as Record<string, unknown>)[key], key).toEqual(value);
    for (const [key, shape] of Object.entries(expected.tensor_shapes)) expect(adapter.tensors.get(key)?.shape, key).toEqual(shape);
    expect(adapter.config.lora_alpha / adapter.config.r).toBe(expected.scaling);
  });

  test("lora_A is unchanged and lora_B is block-diagonal", async () => {
    const stateDict = await loadStateDict();
    const adapter = importLoralib({
      stateDict,
      model: await loadFixtureModel("gpt2-tiny"),
      rank: 4,
      alpha: 32,
      targetModules: ["c_attn"],
      enableLora: [true, true, true],
    });
    const a = toFloat32(adapter.tensors.get("base_model.model.transformer.h.0.attn.c_attn.lora_A.weight")!);
    expect(maxAbsDiff(a, toFloat32(stateDict.get("transformer.h.0.attn.c_attn.lora_A")!))).toBe(0);
    const b = toFloat32(adapter.tensors.get("base_model.model.transformer.h.0.attn.c_attn.lora_B.weight")!);
    const src = toFloat32(stateDict.get("transformer.h.0.attn.c_attn.lora_B")!);
    for (let row = 0; row < 192; row++) {
      for (let col = 0; col < 12; col++) {
        const block = Math.floor(row / 64);
        const group = Math.floor(col / 4);
        expect(b[row * 12 + col]).toBe(block === group ? src[row * 4 + (col % 4)] : 0);
      }
    }
  });

  test("merging the import reproduces loralib's merged weights within 1e-5", async () => {
    const adapter = importLoralib({
      stateDict: await loadStateDict(),
      model: await loadFixtureModel("gpt2-tiny"),
      rank: 4,
      alpha: 32,
      targetModules: ["c_attn"],
      enableLora: [true, true, true],
    });
    const out = path.join(tmp, "merged");
    await mergeCheckpoint({ baseDir: requireFixture("gpt2-tiny"), adapter, outDir: out });
    const cases = (await readSafetensors(requireFixture("cases", "loralib-gpt2.safetensors"))).tensors;
    const merged = await Checkpoint.open(out);
    try {
      for (const layer of [0, 1]) {
        const key = `transformer.h.${layer}.attn.c_attn.weight`;
        expect(maxAbsDiff(await merged.readFloat32(key), toFloat32(cases.get(`merged.${key}`)!)), key).toBeLessThanOrEqual(1e-5);
      }
    } finally {
      await merged.close();
    }
  });

  test.each([
    [{ rank: 8 }, "SHAPE_MISMATCH", /lora_A" is \[12, 64\], expected \[k·r, in\] = \[24, 64\]/],
    [{ enableLora: [true, false, true] }, "SHAPE_MISMATCH", /expected \[k·r, in\] = \[8, 64\]/],
    [{ targetModules: ["c_proj"] }, "USAGE", /not among --target-modules c_proj/],
    [{ rank: 0 }, "USAGE", /--rank must be a positive integer/],
  ])("bad parameters %j are refused", async (patch, code, message) => {
    const run = async () =>
      importLoralib({
        stateDict: await loadStateDict(),
        model: await loadFixtureModel("gpt2-tiny"),
        rank: 4,
        alpha: 32,
        targetModules: ["c_attn"],
        enableLora: [true, true, true],
        ...patch,
      });
    await expect(run()).rejects.toMatchObject({ code });
    await expect(run()).rejects.toThrow(message);
  });
});

describe("enable_lora with disabled blocks, and separate projections", () => {
  const rng = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 7.1 + i * 1.3));
  const infos = new Map([
    ["blk.0.attn.c_attn.weight", { dtype: "F32" as const, shape: [6, 12] }],
    ["blk.0.attn.q.weight", { dtype: "F32" as const, shape: [4, 6] }],
    ["blk.0.attn.k.weight", { dtype: "F32" as const, shape: [4, 6] }],
    ["blk.0.attn.v.weight", { dtype: "F32" as const, shape: [4, 6] }],
  ]);
  const gptLike = describeModel({ model_type: "gpt2" }, infos);
  const r = 2;
  const A = rng(2 * r * 6, 1);
  const B = rng(2 * 4 * r, 2);

  test("a fused Conv1D with enable_lora 1,0,1 puts the groups in blocks 0 and 2", () => {
    const stateDict = new Map([
      ["module.blk.0.attn.c_attn.lora_A", float32Tensor(A, [2 * r, 6])],
      ["module.blk.0.attn.c_attn.lora_B", float32Tensor(B, [2 * 4, r])],
    ]);
    const adapter = importLoralib({ stateDict, model: gptLike, rank: r, alpha: 4, targetModules: ["c_attn"], enableLora: [true, false, true] });
    expect(adapter.config).toMatchObject({ r: 4, lora_alpha: 8, fan_in_fan_out: true });
    const b = toFloat32(adapter.tensors.get("base_model.model.blk.0.attn.c_attn.lora_B.weight")!);
    // Output rows 4..7 (block 1) stay zero; rows 8..11 hold group 1 in columns 2..3.
    for (let row = 4; row < 8; row++) for (let c = 0; c < 4; c++) expect(b[row * 4 + c]).toBe(0);
    expect(b[8 * 4 + 2]).toBe(B[4 * r + 0]);
    expect(b[0 * 4 + 0]).toBe(B[0]);
  });

  test("separate projections are split into one rank-r LoRA each", () => {
    const stateDict = new Map([
      ["blk.0.attn.qkv.lora_A", float32Tensor(A, [2 * r, 6])],
      ["blk.0.attn.qkv.lora_B", float32Tensor(B, [2 * 4, r])],
    ]);
    const adapter = importLoralib({ stateDict, model: gptLike, rank: r, alpha: 4, targetModules: ["q", "k", "v"], enableLora: [true, false, true] });
    expect(adapter.config).toMatchObject({ r: 2, lora_alpha: 4, target_modules: ["q", "v"] });
    expect([...adapter.tensors.keys()].sort()).toEqual([
      "base_model.model.blk.0.attn.q.lora_A.weight",
      "base_model.model.blk.0.attn.q.lora_B.weight",
      "base_model.model.blk.0.attn.v.lora_A.weight",
      "base_model.model.blk.0.attn.v.lora_B.weight",
    ]);
    expect(Array.from(toFloat32(adapter.tensors.get("base_model.model.blk.0.attn.v.lora_A.weight")!))).toEqual(Array.from(A.slice(r * 6)));
    expect(Array.from(toFloat32(adapter.tensors.get("base_model.model.blk.0.attn.v.lora_B.weight")!))).toEqual(Array.from(B.slice(4 * r)));
  });

  test("an unknown module is an error naming it", () => {
    const stateDict = new Map([
      ["blk.9.attn.qkv.lora_A", float32Tensor(A, [2 * r, 6])],
      ["blk.9.attn.qkv.lora_B", float32Tensor(B, [2 * 4, r])],
    ]);
    expect(() => importLoralib({ stateDict, model: gptLike, rank: r, alpha: 4, targetModules: ["q", "k", "v"], enableLora: [true, false, true] })).toThrow(
      LowrankError,
    );
    expect(() => importLoralib({ stateDict, model: gptLike, rank: r, alpha: 4, targetModules: ["q", "k", "v"], enableLora: [true, false, true] })).toThrow(
      /"blk.9.attn.qkv" is not in the base model/,
    );
  });
});

describe("loralib embeddings and hints", () => {
  const infos = new Map([
    ["model.embed_tokens.weight", { dtype: "F32" as const, shape: [10, 4] }],
    ["model.layers.0.self_attn.q_proj.weight", { dtype: "F32" as const, shape: [4, 4] }],
  ]);
  const model = describeModel({ model_type: "llama" }, infos);
  const A = Float32Array.from({ length: 2 * 10 }, (_, i) => i / 7);
  const B = Float32Array.from({ length: 4 * 2 }, (_, i) => 1 - i / 5);

  test("a loralib.Embedding becomes PEFT's lora_embedding_A / lora_embedding_B", () => {
    const stateDict = new Map([
      ["model.embed_tokens.lora_A", float32Tensor(A, [2, 10])],
      ["model.embed_tokens.lora_B", float32Tensor(B, [4, 2])],
    ]);
    const adapter = importLoralib({ stateDict, model, rank: 2, alpha: 4, targetModules: ["embed_tokens"] });
    expect([...adapter.tensors.keys()].sort()).toEqual([
      "base_model.model.model.embed_tokens.lora_embedding_A",
      "base_model.model.model.embed_tokens.lora_embedding_B",
    ]);
    expect(adapter.config).toMatchObject({ r: 2, lora_alpha: 4, target_modules: ["embed_tokens"] });
  });

  test("a MergedLinear imported without --enable-lora says so", () => {
    const stateDict = new Map([
      ["model.layers.0.self_attn.q_proj.lora_A", float32Tensor(new Float32Array(8 * 4), [8, 4])],
      ["model.layers.0.self_attn.q_proj.lora_B", float32Tensor(new Float32Array(4 * 2), [4, 2])],
    ]);
    expect(() => importLoralib({ stateDict, model, rank: 2, alpha: 4, targetModules: ["q_proj"] })).toThrow(
      /looks like a MergedLinear with 4 enabled blocks: pass --enable-lora/,
    );
  });
});
