import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { readFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, expect, test } from "vitest";
import { readAdapter, readSafetensors, toFloat32 } from "@lowrank/core";
import { toIntegers } from "@lowrank/core/internal";
import { maxAbsDiff, requireFixture } from "@lowrank/core/testing";
import { createOrtSession, idsTensor } from "../session/ort-session.js";
import { OnnxLoraSession } from "../session/onnx-lora-session.js";
import { decodeModel, EXTERNAL_LOCATION } from "./onnx-codec.js";
import { mergeOnnxFile } from "./merge-onnx-file.js";
import { writeOnnx } from "./write-onnx.js";

const tmp = mkdtempSync(path.join(os.tmpdir(), "lowrank-onnx-external-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// Models over 2 GB keep their weights in a data file beside the .onnx (as onnx.save_model with
// save_as_external_data writes them): read, merged and served the same way.
test("external-data models are written, read, merged and served", async () => {
  const source = requireFixture("gpt2-tiny", "model.folded.onnx");
  const model = decodeModel(await readFile(source), source);
  const original = decodeModel(await readFile(source), source);
  const externalFile = path.join(tmp, "external.onnx");
  const written = await writeOnnx(externalFile, model, { sourceDir: path.dirname(source), external: true });
  expect(written.externalFile).toBe("external.onnx.data");
  expect(readdirSync(tmp).sort()).toEqual(["external.onnx", "external.onnx.data"]);
  expect(statSync(externalFile).size).toBeLessThan(statSync(source).size / 4);
  const reread = decodeModel(await readFile(externalFile), externalFile);
  const large = original.graph.initializer.filter((t) => (t.raw_data?.byteLength ?? 0) >= 1024).length;
  expect(reread.graph.initializer.filter((t) => t.data_location === EXTERNAL_LOCATION).length).toBe(large);

  const cases = (await readSafetensors(requireFixture("cases", "gpt2-tiny-lora.safetensors"))).tensors;
  const flat = toIntegers(cases.get("input_ids")!);
  const ids = [flat.slice(0, 12), flat.slice(12, 24)];
  const base = (await createOrtSession(externalFile)).session;
  expect(maxAbsDiff((await base.run({ input_ids: idsTensor(ids) })).logits!.data as Float32Array, toFloat32(cases.get("base_logits")!))).toBeLessThanOrEqual(
    1e-4,
  );
  await base.release();

  const adapter = await readAdapter(requireFixture("gpt2-tiny-lora"));
  const mergedFile = path.join(tmp, "merged.onnx");
  await mergeOnnxFile({ model: externalFile, adapter, out: mergedFile });
  const merged = (await createOrtSession(mergedFile)).session;
  expect(
    maxAbsDiff((await merged.run({ input_ids: idsTensor(ids) })).logits!.data as Float32Array, toFloat32(cases.get("adapted_logits")!)),
  ).toBeLessThanOrEqual(1e-4);
  await merged.release();

  const runtime = await OnnxLoraSession.create(externalFile, { adapters: { a: adapter } });
  expect(
    maxAbsDiff((await runtime.run({ input_ids: idsTensor(ids) }, { adapter: "a" })).logits!.data as Float32Array, toFloat32(cases.get("adapted_logits")!)),
  ).toBeLessThanOrEqual(1e-4);
  await runtime.release();
  expect(readdirSync(tmp).filter((f) => f.startsWith("."))).toEqual([]);
});
