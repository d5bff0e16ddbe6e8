import { describe, expect, test } from "vitest";
import { readAdapter, readSafetensors, toFloat32 } from "@lowrank/core";
import { idRows, maxAbsDiff, requireFixture } from "@lowrank/core/testing";
import { encodeModel } from "../onnx/onnx-codec.js";
import { mergeIntoOnnxModel } from "../onnx/merge-onnx.js";
import { createOrtSession, idsTensor } from "../session/ort-session.js";
import { OnnxLoraSession } from "../session/onnx-lora-session.js";
import { exportGpt2Onnx } from "./export-gpt2.js";

describe("GPT-2 export to ONNX", () => {
  test("the exported graph gives transformers' logits; merge and runtime adapters find its weights", async () => {
    const cases = (await readSafetensors(requireFixture("cases", "gpt2-tiny-lora.safetensors"))).tensors;
    const ids = idRows(cases.get("input_ids")!);
    const model = await exportGpt2Onnx(requireFixture("gpt2-tiny"));
    const bytes = encodeModel(model);
    const { session } = await createOrtSession(bytes);
    const base = await session.run({ input_ids: idsTensor(ids) });
    expect(base.logits!.dims).toEqual([2, 12, 512]);
    expect(maxAbsDiff(base.logits!.data as Float32Array, toFloat32(cases.get("base_logits")!))).toBeLessThanOrEqual(1e-4);
    await session.release();

    const adapter = await readAdapter(requireFixture("gpt2-tiny-lora"));
    const runtime = await OnnxLoraSession.create(bytes, { adapters: { a: adapter } });
    const adapted = await runtime.run({ input_ids: idsTensor(ids) }, { adapter: "a" });
    expect(maxAbsDiff(adapted.logits!.data as Float32Array, toFloat32(cases.get("adapted_logits")!))).toBeLessThanOrEqual(1e-4);
    await runtime.release();

    const merged = mergeIntoOnnxModel(await exportGpt2Onnx(requireFixture("gpt2-tiny")), adapter, { modelDir: "." });
    const { session: mergedSession } = await createOrtSession(encodeModel(merged.model));
    const out = await mergedSession.run({ input_ids: idsTensor(ids) });
    expect(maxAbsDiff(out.logits!.data as Float32Array, toFloat32(cases.get("merged_logits")!))).toBeLessThanOrEqual(1e-4);
    await mergedSession.release();
  });

  test("other model types are refused clearly", async () => {
    await expect(exportGpt2Onnx(requireFixture("llama-tiny"))).rejects.toThrow(/model_type is "llama"; the ONNX exporter handles gpt2/);
  });
});
