import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { collectLoraModules } from "../adapter/lora-modules.js";
import { readAdapter } from "../adapter/read-adapter.js";
import { maxAbsDiff, requireFixture } from "../testing/fixtures.js";
import { conversionBase, readAdapterAs, writeAdapterAs } from "./convert-adapter.js";
import { decodeOnnxAdapter } from "./onnx-adapter-file.js";
import { peftToOnnxAdapter } from "./onnx-adapter-lora.js";
import { expectSameUpdates } from "./round-trip.test-util.js";

const tmp = mkdtempSync(path.join(os.tmpdir(), "lowrank-onnx-adapter-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("PEFT ⇄ ONNX Runtime .onnx_adapter", () => {
  test.each([
    ["gpt2-tiny-lora", "gpt2-tiny", "base_model.model.transformer.h.0.attn.c_attn.lora_A.weight"],
    ["llama-tiny-lora", "llama-tiny", "model.layers.0.self_attn.q_proj.lora_A.weight"],
    ["phi3-tiny-lora", "phi3-tiny", "model.layers.0.self_attn.qkv_proj.lora_A.weight"],
    ["gemma-tiny-lora", "gemma-tiny", "model.layers.0.self_attn.q_proj.lora_A.weight"],
    ["llama-tiny-embed-lora", "llama-tiny", "model.embed_tokens.lora_embedding_A"],
  ])("%s: Olive's input names, Aᵀ and scaling·Bᵀ; back to PEFT every update within 1e-5", async (fixture, model, sample) => {
    const base = await conversionBase(requireFixture(model));
    const adapter = await readAdapter(requireFixture(fixture));
    const file = path.join(tmp, `${fixture}.onnx_adapter`);
    await writeAdapterAs(adapter, "onnx-adapter", file, base);
    const { parameters } = decodeOnnxAdapter(readFileSync(file), file);
    expect(parameters.map((p) => p.name)).toContain(sample);
    const back = await readAdapterAs(file, base);
    expect(back.format).toBe("onnx-adapter");
    expectSameUpdates(back.adapter, adapter, 1e-5);
  });

  test("each module's own scaling is folded into B (rsLoRA and an alpha pattern); backend-onnx's slot names on request", async () => {
    const adapter = await readAdapter(requireFixture("llama-tiny-lora"));
    const m = collectLoraModules(adapter).modules.get("model.layers.0.self_attn.v_proj")!;
    const params = new Map(peftToOnnxAdapter(adapter, "lowrank").map((p) => [p.name, p]));
    const b = params.get("lowrank.lora.model.layers.0.self_attn.v_proj.B")!;
    expect(b.dims).toEqual([m.r, m.outFeatures]);
    // B's element (o, k) is at [k, o] scaled by 32 / √8 (alpha_pattern with rsLoRA).
    expect(b.values[1 * m.outFeatures + 5]).toBeCloseTo(m.B[5 * m.r + 1]! * (32 / Math.sqrt(8)), 6);
    expect(maxAbsDiff(params.get("lowrank.lora.model.layers.0.self_attn.v_proj.A")!.values.subarray(0, 1), m.A.subarray(0, 1))).toBe(0);
  });

  test("DoRA is refused in one line", async () => {
    await expect(
      writeAdapterAs(
        await readAdapter(requireFixture("gpt2-tiny-dora")),
        "onnx-adapter",
        path.join(tmp, "d"),
        await conversionBase(requireFixture("gpt2-tiny")),
      ),
    ).rejects.toThrow(/DoRA \(transformer\.h\.0\.attn\.c_attn\) cannot be written as an ONNX Runtime adapter/);
  });
});
