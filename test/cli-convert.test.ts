import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, expect, test } from "vitest";
import { readSafetensors, toFloat32 } from "@lowrank/core";
import { maxAbsDiff, requireFixture } from "@lowrank/core/testing";
import { lowrank } from "./cli-helpers.js";

const tmp = mkdtempSync(path.join(os.tmpdir(), "lowrank-cli-convert-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

test("lowrank convert: PEFT → GGUF → PEFT gives an adapter with the original's logits (LLaMA with rsLoRA and patterns)", async () => {
  const gguf = path.join(tmp, "adapter.gguf");
  const back = path.join(tmp, "back");
  const base = requireFixture("llama-tiny");
  const toGguf = lowrank(["convert", "--to", "gguf", "--adapter", requireFixture("llama-tiny-lora"), "--base", base, "--out", gguf, "--json"]);
  expect(toGguf.status, toGguf.stderr).toBe(0);
  expect(JSON.parse(toGguf.stdout)).toMatchObject({ from: "peft", to: "gguf", modules: 14 });
  expect(readFileSync(gguf).subarray(0, 4).toString("latin1")).toBe("GGUF");
  const toPeft = lowrank(["convert", "--to", "peft", "--adapter", gguf, "--base", base, "--out", back, "--json"]);
  expect(toPeft.status, toPeft.stderr).toBe(0);
  expect(JSON.parse(toPeft.stdout)).toMatchObject({ from: "gguf", to: "peft" });
  const ids = path.join(tmp, "ids.json");
  writeFileSync(ids, "[[5, 9, 200, 31, 7, 88]]");
  const logits = async (adapter: string, name: string) => {
    const run = lowrank(["predict", "--backend", "onnx", "--model", base, "--adapter", adapter, "--input-ids", ids, "--out", path.join(tmp, name)]);
    expect(run.status, run.stderr).toBe(0);
    return toFloat32((await readSafetensors(path.join(tmp, name))).tensors.get("logits")!);
  };
  expect(maxAbsDiff(await logits(back, "back.safetensors"), await logits(requireFixture("llama-tiny-lora"), "original.safetensors"))).toBeLessThanOrEqual(1e-4);
});

test("lowrank convert: mlx-lm folders and .onnx_adapter files round-trip through the CLI too (formats detected)", () => {
  const base = requireFixture("phi3-tiny");
  for (const [to, out] of [
    ["mlx", path.join(tmp, "phi3-mlx")],
    ["onnx-adapter", path.join(tmp, "phi3.onnx_adapter")],
  ] as const) {
    const there = lowrank(["convert", "--to", to, "--adapter", requireFixture("phi3-tiny-lora"), "--base", base, "--out", out, "--json"]);
    expect(there.status, there.stderr).toBe(0);
    const back = lowrank(["convert", "--to", "peft", "--adapter", out, "--base", base, "--out", `${out}-peft`, "--json"]);
    expect(back.status, back.stderr).toBe(0);
    expect(JSON.parse(back.stdout)).toMatchObject({ from: to, to: "peft", modules: 4 });
  }
});

test("lowrank convert: what GGUF cannot hold, and a wrong --to, are one-line usage errors that write nothing", () => {
  const out = path.join(tmp, "dora.gguf");
  const dora = lowrank(["convert", "--to", "gguf", "--adapter", requireFixture("gpt2-tiny-dora"), "--base", requireFixture("gpt2-tiny"), "--out", out]);
  expect(dora.status).toBe(2);
  expect(dora.stderr.trim()).toMatch(/DoRA .* cannot be written as a llama\.cpp GGUF LoRA$/);
  expect(() => readFileSync(out)).toThrow();
  const wrong = lowrank(["convert", "--to", "safetensors", "--adapter", requireFixture("gpt2-tiny-lora"), "--base", requireFixture("gpt2-tiny"), "--out", out]);
  expect(wrong.status).toBe(2);
  expect(wrong.stderr.trim()).toMatch(/--to must be one of peft, gguf/);
});
