import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { gguf } from "@huggingface/gguf";
import { afterAll, describe, expect, test } from "vitest";
import { collectLoraModules } from "../adapter/lora-modules.js";
import { readAdapter } from "../adapter/read-adapter.js";
import { maxAbsDiff, requireFixture } from "../testing/fixtures.js";
import { expectSameUpdates } from "./round-trip.test-util.js";
import { conversionBase, readAdapterAs, writeAdapterAs } from "./convert-adapter.js";
import { readGguf } from "./gguf-file.js";
import { ggufToPeft, permuteRows, peftToGguf } from "./gguf-lora.js";

const tmp = mkdtempSync(path.join(os.tmpdir(), "lowrank-gguf-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const CASES: [string, string, Record<string, { gguf: string; a: number[]; b: number[] }>][] = [
  ["gpt2-tiny-lora", "gpt2-tiny", { "transformer.h.0.attn.c_attn": { gguf: "blk.0.attn_qkv.weight", a: [4, 64], b: [192, 4] } }],
  // rsLoRA, a rank pattern and an alpha pattern: folded into lora_b, the rank kept per module.
  ["llama-tiny-lora", "llama-tiny", { "model.layers.1.mlp.down_proj": { gguf: "blk.1.ffn_down.weight", a: [4, 128], b: [64, 4] } }],
  ["phi3-tiny-lora", "phi3-tiny", { "model.layers.0.self_attn.qkv_proj": { gguf: "blk.0.attn_qkv.weight", a: [4, 64], b: [192, 4] } }],
  ["gemma-tiny-lora", "gemma-tiny", {}],
  ["mistral-sw-tiny-lora", "mistral-sw-tiny", {}],
  // PEFT saved the (unchanged) embedding table beside the embedding LoRA: left out, it changes nothing.
  ["llama-tiny-embed-lora", "llama-tiny", { "model.embed_tokens": { gguf: "token_embd.weight", a: [512, 4], b: [64, 4] } }],
];

describe("PEFT ⇄ llama.cpp GGUF LoRA", () => {
  test.each(CASES)(
    "%s: the GGUF parses with @huggingface/gguf (llama.cpp's names and metadata), and back to PEFT every update is the same within 1e-5",
    async (fixture, model, expected) => {
      const base = await conversionBase(requireFixture(model));
      const adapter = await readAdapter(requireFixture(fixture));
      const file = path.join(tmp, `${fixture}.gguf`);
      await writeAdapterAs(adapter, "gguf", file, base, { name: fixture });
      const parsed = await gguf(file, { allowLocalFile: true });
      const arch = { gpt2: "gpt2", llama: "llama", mistral: "llama", phi3: "phi3", gemma: "gemma" }[String(base.config.model_type)];
      expect(parsed.metadata).toMatchObject({
        "general.architecture": arch,
        "general.type": "adapter",
        "adapter.type": "lora",
        "adapter.lora.alpha": adapter.config.lora_alpha,
      });
      const infos = new Map(parsed.tensorInfos.map((t) => [t.name, t]));
      expect(infos.size).toBe(2 * collectLoraModules(adapter).modules.size);
      for (const t of parsed.tensorInfos) expect(t.name).toMatch(/^(blk\.\d+\.(attn_(q|k|v|qkv|output)|ffn_(gate|up|down))|token_embd)\.weight\.lora_[ab]$/);
      for (const { gguf: name, a, b } of Object.values(expected)) {
        // ggml's dimension order is numpy's reversed.
        expect(infos.get(`${name}.lora_a`)!.shape.map(Number)).toEqual([...a].reverse());
        expect(infos.get(`${name}.lora_b`)!.shape.map(Number)).toEqual([...b].reverse());
      }
      const { format, adapter: back } = await readAdapterAs(file, base);
      expect(format).toBe("gguf");
      expectSameUpdates(back, adapter, 1e-5);
      expect(collectLoraModules(back).replacements.size).toBe(0);
    },
  );

  test("the LLaMA family's q and k rows are permuted as llama.cpp permutes the base (k by its own head count)", async () => {
    const base = await conversionBase(requireFixture("llama-tiny"));
    const adapter = await readAdapter(requireFixture("llama-tiny-lora"));
    const file = await readGguf((writeFileSync(path.join(tmp, "perm.gguf"), peftToGguf(adapter, base)), path.join(tmp, "perm.gguf")));
    const modules = collectLoraModules(adapter).modules;
    for (const [proj, heads] of [
      ["q_proj", 4],
      ["k_proj", 2],
      ["v_proj", 0],
    ] as const) {
      const m = modules.get(`model.layers.0.self_attn.${proj}`)!;
      const b = file.tensors.find((t) => t.name === `blk.0.attn_${proj[0]}.weight.lora_b`)!;
      const folded = m.B.map((v) => (v * m.scaling) / (adapter.config.lora_alpha / m.r));
      if (heads === 0) expect(maxAbsDiff(b.values, folded)).toBeLessThanOrEqual(1e-6);
      else {
        expect(maxAbsDiff(b.values, folded)).toBeGreaterThan(1e-4);
        expect(maxAbsDiff(b.values, permuteRows(folded, m.outFeatures, m.r, heads))).toBeLessThanOrEqual(1e-6);
      }
    }
    // Row j of a head of 4 takes row (j mod 2)·2 + ⌊j/2⌋: 0, 2, 1, 3.
    expect([...permuteRows(Float32Array.of(10, 11, 12, 13), 4, 1, 1)]).toEqual([10, 12, 11, 13]);
    expect([...permuteRows(permuteRows(Float32Array.of(1, 2, 3, 4, 5, 6, 7, 8), 8, 1, 2), 8, 1, 2, true)]).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  test.each([
    ["F16", 2e-3],
    ["BF16", 1.6e-2],
    ["Q8_0", 2e-2],
  ] as const)("%s data parses and round-trips within its precision", async (type, tolerance) => {
    const base = await conversionBase(requireFixture("llama-tiny"));
    const adapter = await readAdapter(requireFixture("llama-tiny-lora"));
    const file = path.join(tmp, `llama-${type}.gguf`);
    await writeAdapterAs(adapter, "gguf", file, base, { ggufType: type });
    const parsed = await gguf(file, { allowLocalFile: true });
    const dtypes = new Set(parsed.tensorInfos.map((t) => t.dtype));
    // ggml types: F16 1, Q8_0 8, BF16 30; q8_0 falls back to f16 for lora_b (rows of r = 4 values), as llama.cpp does.
    expect([...dtypes].sort()).toEqual({ F16: [1], BF16: [30], Q8_0: [1, 8] }[type]);
    expectSameUpdates((await readAdapterAs(file, base)).adapter, adapter, tolerance);
  });

  test("what GGUF cannot hold is refused in one line: DoRA, modules_to_save; a GGUF for another architecture", async () => {
    const gpt2 = await conversionBase(requireFixture("gpt2-tiny"));
    const dora = await readAdapter(requireFixture("gpt2-tiny-dora"));
    expect(() => peftToGguf(dora, gpt2)).toThrow(
      /DoRA \(lora_magnitude_vector of transformer\.h\.0\.attn\.c_attn\) cannot be written as a llama\.cpp GGUF LoRA/,
    );
    const saved = await readAdapter(requireFixture("llama-tiny-lora"));
    saved.tensors.set("base_model.model.lm_head.weight", saved.tensors.values().next().value!);
    await expect(async () => peftToGguf(saved, await conversionBase(requireFixture("llama-tiny")))).rejects.toThrow(/whole tensors \(modules_to_save/);
    const file = path.join(tmp, "gpt2.gguf");
    await writeAdapterAs(await readAdapter(requireFixture("gpt2-tiny-lora")), "gguf", file, gpt2);
    expect(() => ggufToPeft({ metadata: new Map([["general.type", "model"]]), tensors: [] }, gpt2, "x.gguf")).toThrow(/x\.gguf: not a LoRA adapter GGUF/);
    await expect(readAdapterAs(file, await conversionBase(requireFixture("llama-tiny")))).rejects.toThrow(
      /general\.architecture is "gpt2", the base is "llama"/,
    );
  });
});
