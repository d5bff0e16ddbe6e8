import { describe, expect, test } from "vitest";
import type * as ort from "onnxruntime-node";
import { readAdapter, readSafetensors, toFloat32 } from "@lowrank/core";
import { captureLowrankRejection, idRows, maxAbsDiff, requireFixture } from "@lowrank/core/testing";
import { OnnxLoraSession } from "./onnx-lora-session.js";
import { idsTensor } from "./ort-session.js";

const logitsOf = async (p: Promise<ort.InferenceSession.OnnxValueMapType>): Promise<Float32Array> => (await p).logits!.data as Float32Array;

describe("DoRA adapters unmerged on ONNX Runtime", () => {
  test.each(["model.onnx", "model.folded.onnx"])(
    "gpt2-tiny/%s: PEFT's adapted logits; the base and plain LoRA unchanged; mixed batches; no summing",
    async (file) => {
      const cases = (await readSafetensors(requireFixture("cases", "gpt2-tiny-dora.safetensors"))).tensors;
      const ids = idRows(cases.get("input_ids")!);
      const feeds = { input_ids: idsTensor(ids) };
      const dora = await readAdapter(requireFixture("gpt2-tiny-dora"));
      const lora = await readAdapter(requireFixture("gpt2-tiny-lora"));
      const session = await OnnxLoraSession.create(requireFixture("gpt2-tiny", file), { adapters: { dora, lora } });
      try {
        expect(maxAbsDiff(await logitsOf(session.run(feeds, { adapter: "dora" })), toFloat32(cases.get("adapted_logits")!))).toBeLessThanOrEqual(1e-4);
        expect(maxAbsDiff(await logitsOf(session.run(feeds, { adapter: null })), toFloat32(cases.get("base_logits")!))).toBeLessThanOrEqual(1e-4);
        // The DoRA slots' neutral inputs leave a plain LoRA adapter exactly as it was.
        const loraCases = (await readSafetensors(requireFixture("cases", "gpt2-tiny-lora.safetensors"))).tensors;
        const loraFeeds = { input_ids: idsTensor(idRows(loraCases.get("input_ids")!)) };
        expect(maxAbsDiff(await logitsOf(session.run(loraFeeds, { adapter: "lora" })), toFloat32(loraCases.get("adapted_logits")!))).toBeLessThanOrEqual(1e-4);
        // A mixed batch: the DoRA row equals it alone.
        const row = ids[0]!;
        const mixed = (await session.runMixed({ input_ids: idsTensor([row, row]) }, ["dora", null])).logits!.data as Float32Array;
        const alone = await logitsOf(session.run({ input_ids: idsTensor([row]) }, { adapter: "dora" }));
        expect(maxAbsDiff(mixed.slice(0, alone.length), alone)).toBeLessThanOrEqual(1e-5);
        expect((await captureLowrankRejection(session.run(feeds, { adapter: ["dora", "lora"] }))).message).toMatch(
          /adapter "dora" is DoRA: .* cannot be summed/,
        );
      } finally {
        await session.release();
      }
    },
  );
});
