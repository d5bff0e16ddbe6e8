import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { readSafetensors, toFloat32 } from "@lowrank/core";
import { idRows, maxAbsDiff, requireFixture } from "@lowrank/core/testing";
import { lowrank, repoRoot } from "./cli-helpers.js";

// ONNX Runtime is the default for predict and generate wherever it takes the job (issue 17).
const tmp = mkdtempSync(path.join(os.tmpdir(), "lowrank-onnx-default-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const generated = (args: string[]): { ids: number[]; text?: string; backend: string } => {
  const run = lowrank(["generate", ...args, "--json"]);
  expect(run.status, run.stderr).toBe(0);
  return JSON.parse(run.stdout);
};

describe.each([
  ["mistral-sw-tiny", "mistral-sw-tiny-lora"],
  ["phi3-tiny", "phi3-tiny-lora"],
  ["gemma2-tiny", "gemma2-tiny-lora"],
])("%s from its checkpoint folder, without --backend", (base, adapter) => {
  test("predict runs on ONNX Runtime with PEFT's logits, runtime and merged", async () => {
    const cases = (await readSafetensors(requireFixture("cases", `${adapter}.safetensors`))).tensors;
    const ids = path.join(tmp, `${base}-ids.json`);
    writeFileSync(ids, JSON.stringify(idRows(cases.get("input_ids")!)));
    for (const [flags, key] of [
      [[], "base_logits"],
      [["--adapter", requireFixture(adapter)], "adapted_logits"],
      [["--adapter", requireFixture(adapter), "--merge"], "merged_logits"],
    ] as const) {
      const out = path.join(tmp, `${base}-${key}.safetensors`);
      const run = lowrank(["predict", "--model", requireFixture(base), ...flags, "--input-ids", ids, "--out", out]);
      expect(run.status, run.stderr).toBe(0);
      expect(run.stdout).toMatch(/\(backend onnx\)\n$/);
      const logits = (await readSafetensors(out)).tensors.get("logits")!;
      expect(maxAbsDiff(toFloat32(logits), toFloat32(cases.get(key)!)), key).toBeLessThanOrEqual(1e-4);
    }
  });

  test("generate gives tfjs's tokens, greedy and sampled, with the adapter", () => {
    for (const flags of [[], ["--temperature", "0.9", "--top-k", "20", "--seed", "3"]]) {
      const args = [
        "--model",
        requireFixture(base),
        "--adapter",
        requireFixture(adapter),
        "--prompt-ids",
        "5,17,42,99,3,8,1",
        "--max-new-tokens",
        "10",
        ...flags,
      ];
      const onnx = generated(args);
      const tfjs = generated([...args, "--backend", "tfjs"]);
      expect(onnx.backend).toBe("onnx");
      expect(onnx.ids).toHaveLength(10);
      expect(onnx.ids).toEqual(tfjs.ids);
    }
  });
});

test("generate from the embedded model's folder takes a text prompt on ONNX Runtime and answers in text, as tfjs does", () => {
  const args = ["--model", path.join(repoRoot, "models", "gpt2-mini"), "--prompt", "name[The Eagle] | food[French] ||", "--max-new-tokens", "12"];
  const onnx = generated(args);
  const tfjs = generated([...args, "--backend", "tfjs"]);
  expect(onnx.backend).toBe("onnx");
  expect(onnx.ids).toEqual(tfjs.ids);
  expect(onnx.text).toBe(tfjs.text);
  expect(onnx.text?.length).toBeGreaterThan(0);
});

test("a model ONNX Runtime cannot build goes to tfjs with a one-line note; named, onnx says why in one line", () => {
  const ids = path.join(tmp, "roberta-ids.json");
  writeFileSync(ids, "[[0, 5, 9, 2]]");
  const out = path.join(tmp, "roberta.safetensors");
  const run = lowrank(["predict", "--model", requireFixture("roberta-tiny"), "--input-ids", ids, "--out", out]);
  expect(run.status, run.stderr).toBe(0);
  expect(run.stdout).toMatch(/\(backend tfjs\)\n$/);
  expect(run.stderr).toMatch(/^backend "onnx" does not take this job \(.*roberta-tiny: has no model\.onnx, and model_type "roberta" has no ONNX graph builder/);
  expect(run.stderr.trim().split("\n")).toHaveLength(1);
});

test("lowrank backends says what each backend is the default for: ONNX Runtime for inference and generation, tfjs for training", () => {
  const run = lowrank(["backends", "--json"]);
  expect(run.status, run.stderr).toBe(0);
  const rows = JSON.parse(run.stdout) as { name: string; default_for: string[] }[];
  expect(rows.map((r) => r.name)).toEqual(["onnx", "tfjs"]);
  expect(rows[0]!.default_for).toEqual(["infer", "generate", "merge"]);
  expect(rows[1]!.default_for).toEqual(["train"]);
  const text = lowrank(["backends"]);
  expect(text.stdout).toMatch(/^onnx\tavailable on cpu\tinfer,generate,merge,train \(default for infer,generate,merge\)\t/);
});
