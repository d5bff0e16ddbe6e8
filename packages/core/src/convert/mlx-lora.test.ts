import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { collectLoraModules } from "../adapter/lora-modules.js";
import { readAdapter } from "../adapter/read-adapter.js";
import { readSafetensors } from "../formats/safetensors/safetensors-file.js";
import { requireFixture } from "../testing/fixtures.js";
import { conversionBase, readAdapterAs, writeAdapterAs } from "./convert-adapter.js";
import { peftToMlx } from "./mlx-lora.js";
import { expectSameUpdates } from "./round-trip.test-util.js";

const tmp = mkdtempSync(path.join(os.tmpdir(), "lowrank-mlx-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("PEFT ⇄ mlx-lm LoRA", () => {
  test.each([
    ["gpt2-tiny-lora", "gpt2-tiny", "model.h.0.attn.c_attn", ["attn.c_attn", "attn.c_proj", "mlp.c_proj"]],
    [
      "llama-tiny-lora",
      "llama-tiny",
      "model.layers.1.mlp.down_proj",
      ["mlp.down_proj", "mlp.gate_proj", "mlp.up_proj", "self_attn.k_proj", "self_attn.o_proj", "self_attn.q_proj", "self_attn.v_proj"],
    ],
    ["phi3-tiny-lora", "phi3-tiny", "model.layers.0.self_attn.qkv_proj", ["self_attn.o_proj", "self_attn.qkv_proj"]],
    ["gemma-tiny-lora", "gemma-tiny", "model.layers.0.self_attn.q_proj", ["self_attn.q_proj", "self_attn.v_proj"]],
  ])(
    "%s: adapters.safetensors with mlx-lm's keys and shapes (lora_a [in, r], lora_b [r, out]), and back every update within 1e-5",
    async (fixture, model, sample, keys) => {
      const base = await conversionBase(requireFixture(model));
      const adapter = await readAdapter(requireFixture(fixture));
      const out = path.join(tmp, fixture);
      await writeAdapterAs(adapter, "mlx", out, base);
      const config = JSON.parse(readFileSync(path.join(out, "adapter_config.json"), "utf8"));
      expect(config).toMatchObject({ fine_tune_type: "lora", num_layers: 2, lora_parameters: { rank: adapter.config.r, keys } });
      const { tensors } = await readSafetensors(path.join(out, "adapters.safetensors"));
      const m = collectLoraModules(adapter).modules.get(sample.replace(/^model\.h\./, "transformer.h."))!;
      expect(tensors.get(`${sample}.lora_a`)!.shape).toEqual([m.inFeatures, m.r]);
      expect(tensors.get(`${sample}.lora_b`)!.shape).toEqual([m.r, m.outFeatures]);
      const back = await readAdapterAs(out, base);
      expect(back.format).toBe("mlx");
      expectSameUpdates(back.adapter, adapter, 1e-5);
    },
  );

  test("one absolute scale: a module with another PEFT scaling (rsLoRA, alpha pattern) has the ratio folded into its lora_b", async () => {
    const adapter = await readAdapter(requireFixture("llama-tiny-lora"));
    const mlx = peftToMlx(adapter, await conversionBase(requireFixture("llama-tiny")));
    const modules = collectLoraModules(adapter).modules;
    // rsLoRA: alpha / √r = 16 / √8 for most modules; layers.0.self_attn.v_proj has alpha 32.
    expect(mlx.config.lora_parameters.scale).toBeCloseTo(16 / Math.sqrt(8), 6);
    expect(modules.get("model.layers.0.self_attn.v_proj")!.scaling).toBeCloseTo(32 / Math.sqrt(8), 6);
  });

  test("what mlx-lm's LoRA cannot hold is refused in one line: DoRA, embeddings", async () => {
    await expect(
      writeAdapterAs(await readAdapter(requireFixture("gpt2-tiny-dora")), "mlx", path.join(tmp, "dora"), await conversionBase(requireFixture("gpt2-tiny"))),
    ).rejects.toThrow(/DoRA \(transformer\.h\.0\.attn\.c_attn\) cannot be written as an mlx-lm LoRA adapter/);
    await expect(
      writeAdapterAs(
        await readAdapter(requireFixture("llama-tiny-embed-lora")),
        "mlx",
        path.join(tmp, "embed"),
        await conversionBase(requireFixture("llama-tiny")),
      ),
    ).rejects.toThrow(/LoRA on the embedding "model\.embed_tokens" cannot be written as an mlx-lm LoRA adapter/);
  });
});
