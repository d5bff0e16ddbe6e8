import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { Checkpoint, readAdapter, readSafetensors, toFloat32, type Tensor } from "@lowrank/core";
import { SeededRandom } from "@lowrank/core/internal";
import { idRows, maxAbsDiff, requireFixture } from "@lowrank/core/testing";
import { lowrank } from "./cli-helpers.js";

const tmp = mkdtempSync(path.join(os.tmpdir(), "lowrank-cli-deberta-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function fixtureCases(): Promise<Map<string, Tensor>> {
  return (await readSafetensors(requireFixture("cases", "deberta-v2-tiny-lora.safetensors"))).tensors;
}

/** Writes the cases' input ids and mask as JSON files for `lowrank predict`. */
function inputFiles(cases: Map<string, Tensor>): string[] {
  const ids = path.join(tmp, "ids.json");
  const mask = path.join(tmp, "mask.json");
  writeFileSync(ids, JSON.stringify(idRows(cases.get("input_ids")!)));
  writeFileSync(mask, JSON.stringify(idRows(cases.get("attention_mask")!)));
  return ["--input-ids", ids, "--attention-mask", mask];
}

async function predict(model: string, extra: string[], name: string): Promise<Map<string, Tensor>> {
  const out = path.join(tmp, `${name}.safetensors`);
  const run = lowrank(["predict", "--backend", "tfjs", "--model", model, ...inputFiles(await fixtureCases()), "--output", out, ...extra]);
  expect(run.status, run.stderr).toBe(0);
  return (await readSafetensors(out)).tensors;
}

describe("lowrank predict on deberta-v2-tiny (tfjs)", () => {
  test.each([
    ["base", [] as string[]],
    ["adapted", ["--adapter", requireFixture("deberta-v2-tiny-lora")]],
    ["merged", ["--adapter", requireFixture("deberta-v2-tiny-lora"), "--merge"]],
  ])("%s logits and last_hidden_state match PEFT within 1e-4", async (kind, flags) => {
    const cases = await fixtureCases();
    const got = await predict(requireFixture("deberta-v2-tiny"), flags, `predict-${kind}`);
    expect(got.get("logits")!.shape).toEqual([2, 3]);
    expect(maxAbsDiff(toFloat32(got.get("logits")!), toFloat32(cases.get(`${kind}_logits`)!))).toBeLessThanOrEqual(1e-4);
    // transformers' padded positions are reproduced too, so every position is compared.
    expect(got.get("last_hidden_state")!.shape).toEqual([2, 24, 64]);
    expect(maxAbsDiff(toFloat32(got.get("last_hidden_state")!), toFloat32(cases.get(`${kind}_last_hidden_state`)!))).toBeLessThanOrEqual(1e-4);
  });
});

describe("lowrank merge on deberta-v2-tiny-lora", () => {
  test("reproduces the merged weights (LoRA deltas and pooler/classifier replacements) within 1e-5, and the merged model predicts merged_logits", async () => {
    const out = path.join(tmp, "merged-model");
    const run = lowrank(["merge", "--base", requireFixture("deberta-v2-tiny"), "--adapter", requireFixture("deberta-v2-tiny-lora"), "--out", out]);
    expect(run.status, run.stderr).toBe(0);
    const cases = await fixtureCases();
    const expected = [...cases.keys()].filter((k) => k.startsWith("merged."));
    expect(expected.sort()).toEqual(
      [
        "merged.classifier.bias",
        "merged.classifier.weight",
        ...[0, 1].flatMap((i) => ["query_proj", "value_proj"].map((m) => `merged.deberta.encoder.layer.${i}.attention.self.${m}.weight`)),
        "merged.pooler.dense.bias",
        "merged.pooler.dense.weight",
      ].sort(),
    );
    const merged = await Checkpoint.open(out);
    try {
      for (const key of expected)
        expect(maxAbsDiff(await merged.readFloat32(key.slice("merged.".length)), toFloat32(cases.get(key)!)), key).toBeLessThanOrEqual(1e-5);
    } finally {
      await merged.close();
    }
    const got = await predict(out, [], "predict-merged-checkpoint");
    expect(maxAbsDiff(toFloat32(got.get("logits")!), toFloat32(cases.get("merged_logits")!))).toBeLessThanOrEqual(1e-4);
    expect(maxAbsDiff(toFloat32(got.get("last_hidden_state")!), toFloat32(cases.get("merged_last_hidden_state")!))).toBeLessThanOrEqual(1e-4);
  });
});

describe("lowrank train --task seq-cls on deberta-v2-tiny", () => {
  test("writes a SEQ_CLS adapter on query_proj / value_proj that lowrank predict loads", async () => {
    const rng = new SeededRandom(21);
    const lines = Array.from({ length: 24 }, (_, i) => {
      const label = i % 3;
      const ids = [1, ...Array.from({ length: 6 + (i % 4) }, () => 10 + label * 3 + Math.floor(rng.next() * 3)), 2];
      return JSON.stringify({ input_ids: ids, label });
    });
    const data = path.join(tmp, "labelled.jsonl");
    writeFileSync(data, `${lines.join("\n")}\n`);
    const out = path.join(tmp, "trained");
    const run = lowrank([
      "train",
      "--model",
      requireFixture("deberta-v2-tiny"),
      "--task",
      "seq-cls",
      "--data",
      data,
      "--rank",
      "4",
      "--alpha",
      "8",
      "--lr",
      "2e-2",
      "--schedule",
      "constant",
      "--batch-size",
      "8",
      "--steps",
      "15",
      "--seed",
      "4",
      "--out",
      out,
      "--json",
    ]);
    expect(run.status, run.stderr).toBe(0);
    // ONNX Runtime trains it by default (DeBERTa-v2 sequence classification is in its trainer).
    expect(JSON.parse(run.stdout)).toMatchObject({ steps: 15, backend: "onnx" });
    const summary = JSON.parse(readFileSync(path.join(out, "training_summary.json"), "utf8")) as { losses: number[] };
    expect(summary.losses).toHaveLength(15);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean(summary.losses.slice(-3))).toBeLessThan(mean(summary.losses.slice(0, 3)));
    const adapter = await readAdapter(out);
    expect(adapter.config).toMatchObject({ task_type: "SEQ_CLS", r: 4, lora_alpha: 8 });
    expect([...adapter.tensors.keys()].filter((k) => k.endsWith("lora_A.weight")).sort()).toEqual(
      [0, 1].flatMap((i) => ["query_proj", "value_proj"].map((m) => `base_model.model.deberta.encoder.layer.${i}.attention.self.${m}.lora_A.weight`)),
    );
    const base = await predict(requireFixture("deberta-v2-tiny"), [], "predict-before-training");
    const adapted = await predict(requireFixture("deberta-v2-tiny"), ["--adapter", out], "predict-trained");
    expect(adapted.get("logits")!.shape).toEqual([2, 3]);
    expect(maxAbsDiff(toFloat32(adapted.get("logits")!), toFloat32(base.get("logits")!))).toBeGreaterThan(1e-3);
  });
});
