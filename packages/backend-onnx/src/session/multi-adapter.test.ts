import { describe, expect, test } from "vitest";
import type * as ort from "onnxruntime-node";
import { collectLoraModules, peftToOnnxAdapter, readAdapter, readSafetensors, toFloat32 } from "@lowrank/core";
import { encodeOnnxAdapter } from "@lowrank/core/internal";
import { captureLowrankRejection, idRows, maxAbsDiff, perturbedAdapter, requireFixture } from "@lowrank/core/testing";
import { decodeModel, encodeModel } from "../onnx/onnx-codec.js";
import { mergeIntoOnnxModel } from "../onnx/merge-onnx.js";
import { createOrtSession, idsTensor } from "./ort-session.js";
import { OnnxLoraSession } from "./onnx-lora-session.js";
import { readFile } from "node:fs/promises";

const logitsOf = async (p: Promise<ort.InferenceSession.OnnxValueMapType>): Promise<Float32Array> => (await p).logits!.data as Float32Array;
const rowOf = (values: Float32Array, r: number, rows: number): Float32Array => values.slice((values.length / rows) * r, (values.length / rows) * (r + 1));

describe("several adapters on one ONNX Runtime session", () => {
  test("summed adapters equal both merged offline; merge(name) and unmerge; the base when none is active", async () => {
    const file = requireFixture("gpt2-tiny", "model.onnx");
    const cases = (await readSafetensors(requireFixture("cases", "gpt2-tiny-lora.safetensors"))).tensors;
    const feeds = { input_ids: idsTensor(idRows(cases.get("input_ids")!)) };
    const a = await readAdapter(requireFixture("gpt2-tiny-lora"));
    const b = perturbedAdapter(a, { seed: 5, only: "c_attn" });
    const session = await OnnxLoraSession.create(file, { adapters: { a, b } });
    try {
      expect(session.active).toEqual([]);
      expect(maxAbsDiff(await logitsOf(session.run(feeds)), toFloat32(cases.get("base_logits")!))).toBeLessThanOrEqual(1e-4);
      session.setActive("a");
      expect(maxAbsDiff(await logitsOf(session.run(feeds)), toFloat32(cases.get("adapted_logits")!))).toBeLessThanOrEqual(1e-4);

      // Both adapters, summed in one pass = both merged into the weights offline, one after the other.
      const model = decodeModel(await readFile(file), file);
      const both = mergeIntoOnnxModel(mergeIntoOnnxModel(model, a, { modelDir: requireFixture("gpt2-tiny") }).model, b, {
        modelDir: requireFixture("gpt2-tiny"),
      }).model;
      const offline = (await createOrtSession(encodeModel(both))).session;
      const expected = await logitsOf(offline.run(feeds));
      await offline.release();
      session.setActive(["a", "b"]);
      const summed = await logitsOf(session.run(feeds));
      expect(maxAbsDiff(summed, expected)).toBeLessThanOrEqual(1e-4);
      expect(maxAbsDiff(summed, await logitsOf(session.run(feeds, { adapter: "a" })))).toBeGreaterThan(1e-3);

      // merge(name): a session with the weights merged, used for that adapter until unmerge.
      const unmerged = await logitsOf(session.run(feeds, { adapter: "b" }));
      await session.merge("b");
      expect(session.isMerged("b")).toBe(true);
      expect(maxAbsDiff(await logitsOf(session.run(feeds, { adapter: "b" })), unmerged)).toBeLessThanOrEqual(1e-4);
      await session.unmerge("b");
      expect(maxAbsDiff(await logitsOf(session.run(feeds, { adapter: "b" })), unmerged)).toBe(0);

      // Disabled (null) is the base model; deleting an adapter removes it from the active set.
      expect(maxAbsDiff(await logitsOf(session.run(feeds, { adapter: null })), toFloat32(cases.get("base_logits")!))).toBeLessThanOrEqual(1e-4);
      session.unloadAdapter("b");
      expect(session.active).toEqual(["a"]);
      expect((await captureLowrankRejection(session.run(feeds, { adapter: "b" }))).message).toMatch(/adapter "b" is not loaded in this session \(loaded: a\)/);
    } finally {
      await session.release();
    }
  });

  test.each([
    ["grouped by adapter", false],
    ["in one run, each row masking the others' rank columns (rowMixing)", true],
  ])("a mixed batch gives each row what it gives alone with its adapter (%s)", async (_, rowMixing) => {
    const a = await readAdapter(requireFixture("llama-tiny-lora"));
    const b = await readAdapter(requireFixture("llama-tiny-embed-lora"));
    const session = await OnnxLoraSession.create(requireFixture("llama-tiny", "model.onnx"), { adapters: { a, b }, rowMixing });
    try {
      const ids = [
        [5, 9, 200, 31, 7, 88],
        [1, 2, 3, 4, 5, 6],
        [400, 12, 77, 3, 3, 90],
        [5, 9, 200, 31, 7, 88],
      ];
      const names = ["b", null, "a", "__base__"];
      const mixed = (await session.runMixed({ input_ids: idsTensor(ids) }, names)).logits!;
      expect(mixed.dims).toEqual([4, 6, 512]);
      for (let r = 0; r < ids.length; r++) {
        const alone = await logitsOf(session.run({ input_ids: idsTensor([ids[r]!]) }, { adapter: names[r] === "__base__" ? null : names[r] }));
        expect(maxAbsDiff(rowOf(mixed.data as Float32Array, r, 4), alone), `row ${r}`).toBeLessThanOrEqual(1e-5);
      }
      expect(maxAbsDiff(rowOf(mixed.data as Float32Array, 0, 4), rowOf(mixed.data as Float32Array, 3, 4))).toBeGreaterThan(1e-2);
      // rowMixing: every slot has a row mask input (none without it).
      expect(session.session.inputNames.filter((n) => n.endsWith(".row_mask")).length > 0).toBe(rowMixing);
      expect((await captureLowrankRejection(session.runMixed({ input_ids: idsTensor(ids) }, ["a"]))).message).toBe(
        "adapterNames has 1 entries for a batch of 4 rows",
      );
      expect((await captureLowrankRejection(session.runMixed({ input_ids: idsTensor(ids) }, ["a", "a", "zz", null]))).message).toMatch(
        /adapter "zz" is not loaded/,
      );
    } finally {
      await session.release();
    }
  });

  test.each([
    ["gpt2-tiny", "olive"],
    ["llama-tiny", "lowrank"],
  ] as const)("an .onnx_adapter file (%s, %s names) loads and gives PEFT's adapted logits", async (model, naming) => {
    const cases = (await readSafetensors(requireFixture("cases", `${model}-lora.safetensors`))).tensors;
    const feeds = { input_ids: idsTensor(idRows(cases.get("input_ids")!)) };
    const adapter = await readAdapter(requireFixture(`${model}-lora`));
    const session = await OnnxLoraSession.create(requireFixture(model, "model.onnx"), { slots: adapterSlots(adapter) });
    try {
      session.loadOnnxAdapter("file", encodeOnnxAdapter(peftToOnnxAdapter(adapter, naming)));
      expect(maxAbsDiff(await logitsOf(session.run(feeds, { adapter: "file" })), toFloat32(cases.get("adapted_logits")!))).toBeLessThanOrEqual(1e-4);
    } finally {
      await session.release();
    }
  });
});

/** Slots for every module an adapter adapts (so a file of the same modules loads later). */
function adapterSlots(adapter: Awaited<ReturnType<typeof readAdapter>>) {
  return [...collectLoraModules(adapter).modules.values()].map((m) => ({ name: m.name, inFeatures: m.inFeatures, outFeatures: m.outFeatures }));
}
