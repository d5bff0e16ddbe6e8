import { describe, expect, test } from "vitest";
import type * as ort from "onnxruntime-node";
import { readAdapter, readSafetensors, toFloat32 } from "@lowrank/core";
import { idRows, maxAbsDiff, requireFixture } from "@lowrank/core/testing";
import { attachAdapter, generate, loadModel, selectEngine } from "@lowrank/backend-tfjs";
import { emptyPast, generateBatchWithKvCache, generateWithKvCache, kvLayoutOf, kvStepFeeds, presentAsPast } from "./kv-cache.js";
import { OnnxLoraSession } from "./onnx-lora-session.js";

// llama-tiny/model.kv.onnx: an Optimum-style decoder (past_key_values.N.* in, present.N.* out).
const kvModel = () => requireFixture("llama-tiny", "model.kv.onnx");
const logitsOf = (out: ort.InferenceSession.OnnxValueMapType): Float32Array => (out.logits as ort.Tensor).data as Float32Array;

describe("ONNX decoders exported with a key/value cache, adapters at run time or merged", () => {
  test("prompt and cached continuation match PEFT's logits for the base and the adapter", async () => {
    const cases = (await readSafetensors(requireFixture("cases", "llama-tiny-kv.safetensors"))).tensors;
    const prompt = idRows(cases.get("prompt_ids")!);
    const continuation = idRows(cases.get("continuation_ids")!);
    const session = await OnnxLoraSession.create(kvModel(), { adapters: { lora: await readAdapter(requireFixture("llama-tiny-lora")) } });
    try {
      const layout = kvLayoutOf(session.session, "model.kv.onnx")!;
      expect(layout).toEqual({ layers: 2, kvHeads: 2, headDim: 16, attentionMask: true, positionIds: true });
      for (const [which, adapter, merged] of [
        ["base", null, false],
        ["adapted", "lora", false],
        ["adapted", "lora", true],
      ] as const) {
        if (merged) await session.merge("lora");
        const first = await session.run(kvStepFeeds(layout, prompt, emptyPast(layout, 2), 0), { adapter });
        expect(maxAbsDiff(logitsOf(first), toFloat32(cases.get(`${which}_prompt_logits`)!)), `${which} prompt${merged ? " merged" : ""}`).toBeLessThanOrEqual(
          1e-4,
        );
        const next = await session.run(kvStepFeeds(layout, continuation, presentAsPast(layout, first), 6), { adapter });
        expect(
          maxAbsDiff(logitsOf(next), toFloat32(cases.get(`${which}_continuation_logits`)!)),
          `${which} continuation${merged ? " merged" : ""}`,
        ).toBeLessThanOrEqual(1e-4);
      }
      expect(maxAbsDiff(toFloat32(cases.get("adapted_prompt_logits")!), toFloat32(cases.get("base_prompt_logits")!))).toBeGreaterThan(1e-2);
    } finally {
      await session.release();
    }
  });

  test("generation equals the tfjs backend's token for token, greedy and sampled, base and adapter", async () => {
    await selectEngine();
    const adapter = await readAdapter(requireFixture("llama-tiny-lora"));
    const session = await OnnxLoraSession.create(kvModel(), { adapters: { lora: adapter } });
    const base = await loadModel(requireFixture("llama-tiny"));
    const adapted = await loadModel(requireFixture("llama-tiny"));
    attachAdapter(adapted, adapter);
    try {
      const layout = kvLayoutOf(session.session, "model.kv.onnx")!;
      const prompt = [5, 17, 42, 99, 3, 250];
      for (const sampling of [{}, { temperature: 0.9, topK: 40, topP: 0.95, seed: 3 }]) {
        const options = { maxNewTokens: 20, eosTokenId: -1, ...sampling };
        const onnxBase = await generateWithKvCache(session, layout, prompt, { ...options, adapter: null });
        const onnxLora = await generateWithKvCache(session, layout, prompt, { ...options, adapter: "lora" });
        expect(onnxBase).toHaveLength(20);
        expect(onnxBase).toEqual(generate(base, prompt, options));
        expect(onnxLora).toEqual(generate(adapted, prompt, options));
        expect(onnxLora).not.toEqual(onnxBase);
      }
    } finally {
      await session.release();
      base.store.dispose();
      adapted.store.dispose();
    }
  });

  test("a batch of prompts of different lengths (left-padded), each row with its own adapter, gives each row its solo tokens", async () => {
    const session = await OnnxLoraSession.create(kvModel(), { adapters: { lora: await readAdapter(requireFixture("llama-tiny-lora")) } });
    try {
      const layout = kvLayoutOf(session.session, "model.kv.onnx")!;
      const prompts = [
        [5, 17, 42, 99, 3, 250],
        [7, 8, 9],
        [400, 12, 77, 3, 90],
      ];
      const adapters = ["lora", null, "lora"];
      for (const sampling of [{}, { temperature: 0.9, topK: 40, seed: 5 }]) {
        const options = { maxNewTokens: 12, eosTokenId: -1, ...sampling };
        const batched = await generateBatchWithKvCache(session, layout, prompts, { ...options, adapters });
        for (let row = 0; row < prompts.length; row++) {
          const alone = await generateWithKvCache(session, layout, prompts[row]!, { ...options, adapter: adapters[row] ?? null });
          expect(batched[row], `row ${row}`).toEqual(alone);
        }
      }
      const same = await generateBatchWithKvCache(session, layout, prompts, { maxNewTokens: 8, eosTokenId: -1 });
      expect(same[1]).toEqual(await generateWithKvCache(session, layout, prompts[1]!, { maxNewTokens: 8, eosTokenId: -1, adapter: null }));
    } finally {
      await session.release();
    }
  });
});
