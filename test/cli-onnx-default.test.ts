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

/** `lowrank predict` without --backend on a fixture folder: base, runtime and merged logits against PEFT's, on ONNX Runtime. */
async function expectPeftLogitsOnOnnx(base: string, adapter: string, outputs: RegExp): Promise<void> {
  const cases = (await readSafetensors(requireFixture("cases", `${adapter}.safetensors`))).tensors;
  const ids = path.join(tmp, `${base}-ids.json`);
  const mask = path.join(tmp, `${base}-mask.json`);
  writeFileSync(ids, JSON.stringify(idRows(cases.get("input_ids")!)));
  writeFileSync(mask, JSON.stringify(idRows(cases.get("attention_mask")!)));
  for (const [flags, key] of [
    [[], "base_logits"],
    [["--adapter", requireFixture(adapter)], "adapted_logits"],
    [["--adapter", requireFixture(adapter), "--merge"], "merged_logits"],
  ] as const) {
    const out = path.join(tmp, `${base}-${key}.safetensors`);
    const run = lowrank(["predict", "--model", requireFixture(base), ...flags, "--input-ids", ids, "--attention-mask", mask, "--out", out]);
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toMatch(outputs);
    const logits = (await readSafetensors(out)).tensors.get("logits")!;
    expect(maxAbsDiff(toFloat32(logits), toFloat32(cases.get(key)!)), key).toBeLessThanOrEqual(1e-4);
  }
}

describe.each([
  ["mistral-sw-tiny", "mistral-sw-tiny-lora"],
  ["phi3-tiny", "phi3-tiny-lora"],
  ["gemma2-tiny", "gemma2-tiny-lora"],
])("%s from its checkpoint folder, without --backend", (base, adapter) => {
  test("predict runs on ONNX Runtime with PEFT's logits, runtime and merged", async () => {
    await expectPeftLogitsOnOnnx(base, adapter, /^wrote logits \[[^\]]*\] to .*\(backend onnx\)\n$/);
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

describe.each([
  ["roberta-tiny", "roberta-tiny-lora"],
  ["deberta-v2-tiny", "deberta-v2-tiny-lora"],
])("the encoder %s from its checkpoint folder, without --backend", (base, adapter) => {
  test("predict runs on ONNX Runtime with PEFT's logits, base, runtime and merged (modules_to_save heads fed at run time)", async () => {
    await expectPeftLogitsOnOnnx(base, adapter, /^wrote logits \[[^\]]*\] and last_hidden_state \[[^\]]*\] to .*\(backend onnx\)\n$/);
  });
});

test("lowrank backends says what each backend is the default for; a training run ONNX Runtime cannot do goes to tfjs, which the summary says", () => {
  const run = lowrank(["backends", "--json"]);
  expect(run.status, run.stderr).toBe(0);
  const rows = JSON.parse(run.stdout) as { name: string; default_for: string[] }[];
  expect(rows.map((r) => r.name)).toEqual(["onnx", "tfjs"]);
  expect(rows[0]!.default_for).toEqual(["infer", "generate", "merge", "train"]);
  expect(rows[1]!.default_for).toEqual([]);
  const text = lowrank(["backends"]);
  expect(text.stdout).toMatch(/^onnx\tavailable on cpu\tinfer,generate,merge,train \(default for infer,generate,merge,train\)\t/);
  const data = path.join(repoRoot, "examples", "data", "e2e-restaurants.jsonl");
  const common = [
    "train",
    "--model",
    path.join(repoRoot, "models", "gpt2-mini"),
    "--data",
    data,
    "--steps",
    "1",
    "--batch-size",
    "2",
    "--seq-len",
    "16",
    "--json",
  ];
  const plain = lowrank([...common, "--out", path.join(tmp, "plain")]);
  expect(plain.status, plain.stderr).toBe(0);
  expect(JSON.parse(plain.stdout).backend).toBe("onnx");
  // LoRA on GPT-2's position embeddings: tfjs trains it, the ONNX trainer does not (yet).
  const positions = lowrank([...common, "--target-modules", "c_attn,wpe", "--out", path.join(tmp, "wpe")]);
  expect(positions.status, positions.stderr).toBe(0);
  const summary = JSON.parse(positions.stdout);
  expect(summary.backend).toBe("tfjs");
  expect(summary.declined.onnx).toMatch(/the onnx trainer does not support LoRA on `transformer\.wpe` \(target_modules\) yet; use --backend tfjs$/);
});
