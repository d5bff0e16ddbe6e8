import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, test } from "vitest";
import { captureLowrankError } from "../testing/capture-error.js";
import { decodeOnnxAdapter, encodeOnnxAdapter } from "./onnx-adapter-file.js";

// ort-made.onnx_adapter: written by onnxruntime 1.30's own AdapterFormat (testdata/make-ort-adapter.py).
const ORT_MADE = readFileSync(path.join(import.meta.dirname, "testdata", "ort-made.onnx_adapter"));

describe("ONNX Runtime's .onnx_adapter FlatBuffer", () => {
  test("reads a file onnxruntime wrote: versions, names, dims, float32 and float16 data", () => {
    const file = decodeOnnxAdapter(ORT_MADE, "ort-made.onnx_adapter");
    expect([file.formatVersion, file.adapterVersion, file.modelVersion]).toEqual([1, 3, 7]);
    const byName = new Map(file.parameters.map((p) => [p.name, p]));
    expect(byName.get("model.layers.0.self_attn.q_proj.lora_A.weight")).toMatchObject({
      dims: [3, 2],
      values: Float32Array.from([0, 1, 2, 3, 4, 5], (v) => v / 4),
    });
    expect(byName.get("model.layers.0.self_attn.q_proj.lora_B.weight")).toMatchObject({ dims: [2], values: Float32Array.of(1.5, -2) });
  });

  test.each(["F32", "F16", "BF16"] as const)("writes what it reads (%s), 8-byte aligned data, the TORT identifier", (dataType) => {
    const parameters = [
      { name: "a", dims: [3, 2], values: Float32Array.of(0, 0.25, 0.5, 0.75, 1, 1.25) },
      { name: "model.layers.1.mlp.down_proj.lora_B.weight", dims: [2, 1, 2], values: Float32Array.of(-1, 2, 3.5, -4) },
    ];
    const bytes = encodeOnnxAdapter(parameters, { dataType, adapterVersion: 2, modelVersion: 5 });
    expect(new TextDecoder().decode(bytes.subarray(4, 8))).toBe("TORT");
    const back = decodeOnnxAdapter(bytes, "x");
    expect([back.formatVersion, back.adapterVersion, back.modelVersion]).toEqual([1, 2, 5]);
    expect(back.parameters).toEqual(parameters);
  });

  test("a damaged file is a one-line error naming it", () => {
    expect(captureLowrankError(() => decodeOnnxAdapter(new TextEncoder().encode("not an adapter"), "bad.onnx_adapter")).message).toBe(
      'bad.onnx_adapter: not an ONNX Runtime adapter file (no "TORT" identifier)',
    );
    expect(captureLowrankError(() => decodeOnnxAdapter(ORT_MADE.subarray(0, 120), "cut.onnx_adapter")).message).toMatch(/^cut\.onnx_adapter: /);
  });
});
