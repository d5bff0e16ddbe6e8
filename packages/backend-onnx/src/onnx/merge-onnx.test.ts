import { readFile } from "node:fs/promises";
import path from "node:path";
import * as ort from "onnxruntime-node";
import { describe, expect, test } from "vitest";
import { readAdapter, readSafetensors, toFloat32 } from "@lowrank/core";
import { maxAbsDiff, requireFixture, idRows } from "@lowrank/core/testing";
import { createOrtSession, idsTensor } from "../session/ort-session.js";
import { decodeModel, encodeModel } from "./onnx-codec.js";
import { mergeIntoOnnxModel } from "./merge-onnx.js";

async function logitsOf(model: string | Uint8Array, ids: number[][]): Promise<Float32Array> {
  const { session } = await createOrtSession(model);
  const out = await session.run({ input_ids: idsTensor(ids) });
  await session.release();
  return out.logits!.data as Float32Array;
}

describe.each([
  ["gpt2-tiny", "model.onnx", "gpt2-tiny-lora"],
  ["gpt2-tiny", "model.folded.onnx", "gpt2-tiny-lora"],
  ["llama-tiny", "model.onnx", "llama-tiny-lora"],
  ["llama-tiny", "model.folded.onnx", "llama-tiny-lora"],
  ["gpt2-tiny", "model.onnx", "gpt2-tiny-dora"],
  ["gpt2-tiny", "model.folded.onnx", "gpt2-tiny-dora"],
  ["llama-tiny", "model.onnx", "llama-tiny-embed-lora"],
  ["llama-tiny", "model.folded.onnx", "llama-tiny-embed-lora"],
])("%s/%s with %s", (base, file, adapterName) => {
  test("round-trips byte for byte and gives the ONNX cases' logits", async () => {
    const bytes = await readFile(requireFixture(base, file));
    expect(Buffer.compare(Buffer.from(encodeModel(decodeModel(bytes, file))), bytes)).toBe(0);
    const cases = (await readSafetensors(requireFixture("cases", `${base}-onnx.safetensors`))).tensors;
    expect(maxAbsDiff(await logitsOf(requireFixture(base, file), idRows(cases.get("input_ids")!)), toFloat32(cases.get("logits")!))).toBeLessThanOrEqual(1e-4);
  });

  test("offline merge gives PEFT's adapted logits; only the adapted weights change", async () => {
    const bytes = await readFile(requireFixture(base, file));
    const model = decodeModel(bytes, file);
    const before = new Map(model.graph.initializer.map((t) => [t.name, Buffer.from(t.raw_data ?? [])]));
    const nodesBefore = model.graph.node.map((n) => `${n.op_type}:${n.input.join(",")}`);
    const merged = mergeIntoOnnxModel(model, await readAdapter(requireFixture(adapterName)), { modelDir: path.dirname(requireFixture(base, file)) });
    const changed = model.graph.initializer
      .filter((t) => Buffer.compare(before.get(t.name) ?? Buffer.alloc(0), Buffer.from(t.raw_data ?? [])) !== 0)
      .map((t) => t.name);
    // Each adapted module changes exactly one initializer; the embedding adapter's saved base_layer copy
    // replaces the table with itself.
    expect(changed).toHaveLength(merged.mergedModules.length);
    if (file === "model.onnx") expect(new Set(changed)).toEqual(new Set(merged.mergedModules.map((m) => `${m}.weight`)));
    expect(model.graph.node.map((n) => `${n.op_type}:${n.input.join(",")}`)).toEqual(nodesBefore);
    const cases = (await readSafetensors(requireFixture("cases", `${adapterName}.safetensors`))).tensors;
    const got = await logitsOf(encodeModel(model), idRows(cases.get("input_ids")!));
    expect(maxAbsDiff(got, toFloat32(cases.get("adapted_logits")!))).toBeLessThanOrEqual(1e-4);
    expect(maxAbsDiff(got, toFloat32(cases.get("merged_logits")!))).toBeLessThanOrEqual(1e-4);
  });
});

test("the folded LLaMA maps every projection through the graph, transposed", async () => {
  const { locateWeights } = await import("./locate-weights.js");
  const model = decodeModel(await readFile(requireFixture("llama-tiny", "model.folded.onnx")), "folded");
  const found = locateWeights(model.graph, [{ name: "model.layers.1.self_attn.k_proj", inFeatures: 64, outFeatures: 32 }], "folded");
  const loc = found.get("model.layers.1.self_attn.k_proj")!;
  expect(loc).toMatchObject({ via: "graph", layout: "in_out", kind: "linear" });
  expect(loc.initializer.name).toMatch(/^onnx::MatMul_\d+$/);
  expect(loc.node.name).toBe("/model/layers.1/self_attn/k_proj/MatMul");
});

test("ort is the CPU build", () => {
  expect(typeof ort.InferenceSession.create).toBe("function");
});
