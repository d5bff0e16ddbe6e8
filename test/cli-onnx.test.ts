import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { readSafetensors, toFloat32, type Tensor } from "@lowrank/core";
import { maxAbsDiff, requireFixture, idRows } from "@lowrank/core/testing";
import { lowrank } from "./cli-helpers.js";

const tmp = mkdtempSync(path.join(os.tmpdir(), "lowrank-cli-onnx-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function idsFile(cases: string): Promise<{ file: string; tensors: Map<string, Tensor> }> {
  const { tensors } = await readSafetensors(requireFixture("cases", `${cases}.safetensors`));
  const file = path.join(tmp, `${cases}-ids.json`);
  writeFileSync(file, JSON.stringify(idRows(tensors.get("input_ids")!)));
  return { file, tensors };
}

async function logits(out: string): Promise<Float32Array> {
  return toFloat32((await readSafetensors(out)).tensors.get("logits")!);
}

describe.each([
  ["gpt2-tiny", "model.onnx"],
  ["gpt2-tiny", "model.folded.onnx"],
  ["llama-tiny", "model.onnx"],
  ["llama-tiny", "model.folded.onnx"],
])("lowrank predict --backend onnx on %s/%s", (base, file) => {
  test.each([
    ["base", [] as string[], "base_logits"],
    ["runtime adapter", ["--adapter"], "adapted_logits"],
    ["merged adapter", ["--adapter", "--merge"], "merged_logits"],
  ])("%s matches PEFT within 1e-4", async (name, flags, expected) => {
    const { file: ids, tensors } = await idsFile(`${base}-lora`);
    const out = path.join(tmp, `${base}-${file}-${name.replace(/ /g, "-")}.safetensors`);
    const args = ["predict", "--backend", "onnx", "--model", requireFixture(base, file), "--input-ids", ids, "--output", out];
    for (const f of flags) args.push(f, ...(f === "--adapter" ? [requireFixture(`${base}-lora`)] : []));
    const run = lowrank(args);
    expect(run.status, run.stderr).toBe(0);
    expect(maxAbsDiff(await logits(out), toFloat32(tensors.get(expected)!))).toBeLessThanOrEqual(1e-4);
  });
});

// A GPT-2 checkpoint folder (no .onnx file): the graph is built from the checkpoint in memory.
describe("lowrank predict --backend onnx on the gpt2-tiny checkpoint folder", () => {
  test.each([
    ["gpt2-tiny-lora", [] as string[], "base_logits"],
    ["gpt2-tiny-lora", ["--adapter"], "adapted_logits"],
    ["gpt2-tiny-lora", ["--adapter", "--merge"], "merged_logits"],
    ["gpt2-tiny-dora", ["--adapter"], "adapted_logits"],
  ])("%s %j matches PEFT within 1e-4", async (adapter, flags, expected) => {
    const { file: ids, tensors } = await idsFile(adapter);
    const out = path.join(tmp, `folder-${adapter}-${flags.join("")}.safetensors`);
    const args = ["predict", "--backend", "onnx", "--model", requireFixture("gpt2-tiny"), "--input-ids", ids, "--out", out];
    for (const f of flags) args.push(f, ...(f === "--adapter" ? [requireFixture(adapter)] : []));
    const run = lowrank(args);
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/\(backend onnx\)/);
    expect(maxAbsDiff(await logits(out), toFloat32(tensors.get(expected)!))).toBeLessThanOrEqual(1e-4);
  });

  test("a folder of another architecture without model.onnx is one clear line", () => {
    const ids = path.join(tmp, "folder-ids.json");
    writeFileSync(ids, "[[1, 2, 3]]");
    const out = path.join(tmp, "x.safetensors");
    const t5 = path.join(tmp, "t5-folder");
    mkdirSync(t5, { recursive: true });
    writeFileSync(path.join(t5, "config.json"), JSON.stringify({ model_type: "t5" }));
    const run = lowrank(["predict", "--backend", "onnx", "--model", t5, "--input-ids", ids, "--out", out]);
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(
      /^lowrank: error: .*t5-folder: has no model\.onnx, and model_type "t5" has no ONNX graph builder \(supported: gpt2, llama, .*, roberta, [^)]*\)\n$/,
    );
    expect(existsSync(out)).toBe(false);
  });
});

// DoRA and embedding LoRA (no ONNX files were made for them: the bases' exports are used).
describe.each([
  ["gpt2-tiny", "gpt2-tiny-dora", ["--adapter", "--merge"]],
  ["gpt2-tiny", "gpt2-tiny-dora", ["--adapter"]],
  ["llama-tiny", "llama-tiny-embed-lora", ["--adapter", "--merge"]],
  ["llama-tiny", "llama-tiny-embed-lora", ["--adapter"]],
] as const)("lowrank predict --backend onnx on %s/model.onnx with %s %j", (base, adapter, flags) => {
  test("matches PEFT within 1e-4", async () => {
    const { file: ids, tensors } = await idsFile(adapter);
    const merged = (flags as readonly string[]).includes("--merge");
    const out = path.join(tmp, `${adapter}-${merged ? "merged" : "runtime"}.safetensors`);
    const run = lowrank([
      "predict",
      "--backend",
      "onnx",
      "--model",
      requireFixture(base, "model.onnx"),
      "--input-ids",
      ids,
      "--adapter",
      requireFixture(adapter),
      ...(merged ? ["--merge"] : []),
      "--output",
      out,
    ]);
    expect(run.status, run.stderr).toBe(0);
    expect(maxAbsDiff(await logits(out), toFloat32(tensors.get(merged ? "merged_logits" : "adapted_logits")!))).toBeLessThanOrEqual(1e-4);
  });
});

describe("lowrank onnx merge", () => {
  test.each([
    ["gpt2-tiny", "model.folded.onnx"],
    ["llama-tiny", "model.folded.onnx"],
  ])("%s/%s: the merged file gives PEFT's adapted logits", async (base, file) => {
    const merged = path.join(tmp, `${base}-merged.onnx`);
    const run = lowrank(["onnx", "merge", "--model", requireFixture(base, file), "--adapter", requireFixture(`${base}-lora`), "--out", merged]);
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^merged (6|14) module\(s\) into /);
    const { file: ids, tensors } = await idsFile(`${base}-lora`);
    const out = path.join(tmp, `${base}-merged-out.safetensors`);
    expect(lowrank(["predict", "--backend", "onnx", "--model", merged, "--input-ids", ids, "--output", out]).status).toBe(0);
    expect(maxAbsDiff(await logits(out), toFloat32(tensors.get("adapted_logits")!))).toBeLessThanOrEqual(1e-4);
  });

  test("bad input is a one-line usage error and writes nothing", () => {
    const notOnnx = path.join(tmp, "not.onnx");
    writeFileSync(notOnnx, "hello, I am not a protobuf");
    const out = path.join(tmp, "never.onnx");
    for (const [args, message] of [
      [["--model", notOnnx, "--adapter", requireFixture("gpt2-tiny-lora")], /not\.onnx: not an ONNX model/],
      [
        ["--model", requireFixture("gpt2-tiny", "model.onnx"), "--adapter", requireFixture("llama-tiny-lora")],
        /cannot find the weight of module "model\.layers\.0\.(self_attn|mlp)\.\w+_proj"/,
      ],
      [["--model", requireFixture("gpt2-tiny", "model.onnx"), "--adapter", path.join(tmp, "missing")], /missing: not an adapter folder/],
    ] as const) {
      const run = lowrank(["onnx", "merge", ...args, "--out", out]);
      expect(run.status, run.stderr).toBe(2);
      expect(run.stderr).toMatch(/^lowrank: error: [^\n]+\n$/);
      expect(run.stderr).toMatch(message);
      expect(existsSync(out)).toBe(false);
    }
  });
});

test("asking for CUDA falls back to the CPU with the reason, and still answers", async () => {
  const { file: ids, tensors } = await idsFile("gpt2-tiny-lora");
  const out = path.join(tmp, "cuda.safetensors");
  const run = lowrank(["predict", "--backend", "onnx", "--model", requireFixture("gpt2-tiny", "model.onnx"), "--input-ids", ids, "--output", out], {
    LOWRANK_ORT_PROVIDER: "cuda",
  });
  expect(run.status, run.stderr).toBe(0);
  expect(run.stderr).toMatch(/ONNX Runtime: CUDA unavailable \(.+\); using the CPU/);
  expect(maxAbsDiff(await logits(out), toFloat32(tensors.get("base_logits")!))).toBeLessThanOrEqual(1e-4);
});

test("lowrank onnx export: a GPT-2 checkpoint (with an adapter merged in) runs on ONNX Runtime with PEFT's logits", async () => {
  const out = path.join(tmp, "exported.onnx");
  const run = lowrank(["onnx", "export", "--model", requireFixture("gpt2-tiny"), "--adapter", requireFixture("gpt2-tiny-lora"), "--out", out]);
  expect(run.status, run.stderr).toBe(0);
  const { file: ids, tensors } = await idsFile("gpt2-tiny-lora");
  const logitsFile = path.join(tmp, "exported-out.safetensors");
  expect(lowrank(["predict", "--backend", "onnx", "--model", out, "--input-ids", ids, "--output", logitsFile]).status).toBe(0);
  expect(maxAbsDiff(await logits(logitsFile), toFloat32(tensors.get("merged_logits")!))).toBeLessThanOrEqual(1e-4);
});
