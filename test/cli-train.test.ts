import { mkdtempSync, rmSync, writeFileSync, existsSync, readdirSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { readAdapter } from "@lowrank/core";
import { requireFixture } from "@lowrank/core/testing";
import { e2eByteData, lowrank, readTrainingLog } from "./cli-helpers.js";

const tmp = mkdtempSync(path.join(os.tmpdir(), "lowrank-cli-train-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const e2eData = (name: string, from: number, count: number): string => e2eByteData(tmp, name, from, count);
const readLog = readTrainingLog;

describe("lowrank train", () => {
  const data = e2eData("train.jsonl", 0, 48);
  const evalData = e2eData("eval.jsonl", 100, 16);
  const common = [
    "--model",
    requireFixture("gpt2-tiny"),
    "--data",
    data,
    "--rank",
    "4",
    "--alpha",
    "8",
    "--target-modules",
    "c_attn,c_proj",
    "--lr",
    "5e-3",
    "--batch-size",
    "8",
    "--seed",
    "3",
    "--steps",
    "12",
  ];

  test("trains LoRA on real text: loss falls, a PEFT adapter folder is written, inspect reads it", async () => {
    const out = path.join(tmp, "run");
    const log = path.join(tmp, "run.jsonl");
    const run = lowrank(["train", ...common, "--out", out, "--log", log, "--eval-data", evalData, "--eval-every", "6", "--json"]);
    expect(run.status, run.stderr).toBe(0);
    const summary = JSON.parse(run.stdout);
    expect(summary).toMatchObject({ steps: 12, trainable_parameters: 2 * (4 * 64 + 192 * 4 + 4 * 64 + 64 * 4 + 4 * 256 + 64 * 4), total_parameters: 136960 });
    const entries = readLog(log);
    const steps = entries.filter((e) => e.loss !== undefined);
    expect(steps.map((e) => e.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(steps.at(-1)!.loss!).toBeLessThan(steps[0]!.loss!);
    const evals = entries.filter((e) => e.eval_loss !== undefined);
    expect(evals).toHaveLength(2);
    expect(evals[1]!.eval_loss!).toBeLessThan(evals[0]!.eval_loss! + 1e-3);
    const adapter = await readAdapter(out);
    expect(adapter.config).toMatchObject({ peft_type: "LORA", r: 4, lora_alpha: 8, fan_in_fan_out: true, task_type: "CAUSAL_LM", inference_mode: true });
    expect(adapter.tensors.get("base_model.model.transformer.h.1.mlp.c_proj.lora_A.weight")!.shape).toEqual([4, 256]);
    const inspect = lowrank(["inspect", out, "--base", requireFixture("gpt2-tiny"), "--json"]);
    expect(inspect.status, inspect.stderr).toBe(0);
    expect(JSON.parse(inspect.stdout).modules).toHaveLength(6);
    expect(existsSync(`${log}.partial`)).toBe(false);
  });

  test("resuming from a mid-run checkpoint gives the same next losses as the uninterrupted run", () => {
    const straightLog = path.join(tmp, "straight.jsonl");
    expect(lowrank(["train", ...common, "--out", path.join(tmp, "straight"), "--log", straightLog]).status).toBe(0);
    const first = path.join(tmp, "first");
    expect(lowrank(["train", ...common, "--out", first, "--save-every", "5"]).status).toBe(0);
    expect(
      readdirSync(first)
        .filter((f) => f.startsWith("checkpoint-"))
        .sort(),
    ).toEqual(["checkpoint-10", "checkpoint-5"]);
    const resumedLog = path.join(tmp, "resumed.jsonl");
    const resumed = lowrank(["train", ...common, "--out", path.join(tmp, "resumed"), "--resume", path.join(first, "checkpoint-5"), "--log", resumedLog]);
    expect(resumed.status, resumed.stderr).toBe(0);
    const straight = readLog(straightLog).filter((e) => e.loss !== undefined);
    const next = readLog(resumedLog).filter((e) => e.loss !== undefined);
    expect(next.map((e) => e.step)).toEqual([6, 7, 8, 9, 10, 11, 12]);
    next.forEach((e) => expect(e.loss!).toBeCloseTo(straight[e.step! - 1]!.loss!, 6));
  });

  test("--full trains every parameter and writes a checkpoint that loads", () => {
    const out = path.join(tmp, "full");
    const run = lowrank([
      "train",
      "--model",
      requireFixture("gpt2-tiny"),
      "--data",
      data,
      "--steps",
      "3",
      "--batch-size",
      "8",
      "--lr",
      "1e-3",
      "--full",
      "--out",
      out,
      "--json",
    ]);
    expect(run.status, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout).trainable_parameters).toBe(136960);
    expect(readdirSync(out).sort()).toEqual(["config.json", "generation_config.json", "model.safetensors", "training_summary.json"]);
    const ids = path.join(tmp, "ids.json");
    writeFileSync(ids, "[[1, 2, 3]]");
    expect(lowrank(["predict", "--model", out, "--input-ids", ids, "--output", path.join(tmp, "full-out.safetensors")]).status).toBe(0);
  });

  test("bad flags and data are one-line usage errors that write nothing", () => {
    const bad = path.join(tmp, "bad.jsonl");
    writeFileSync(bad, '{"input_ids": [1, 2, 3]}\n{"input_ids": [1, 99999]}\n');
    const out = path.join(tmp, "never");
    for (const [args, message] of [
      [["--data", bad], /--data .*bad\.jsonl line 2: `input_ids` must be integers from 0 to 511/],
      [["--data", data, "--rank", "0"], /--rank must be an integer ≥ 1, got "0"/],
      [["--data", data, "--steps", "3", "--epochs", "1"], /give --steps or --epochs, not both/],
      [["--data", data, "--target-modules", "nope"], /`target_modules` \["nope"\] matched no module/],
      [["--data", data, "--task", "seq-cls"], /--task seq-cls does not fit/],
    ] as const) {
      const run = lowrank(["train", "--model", requireFixture("gpt2-tiny"), "--out", out, ...args]);
      expect(run.status, run.stderr).toBe(2);
      expect(run.stderr).toMatch(/^(lowrank: warning: [^\n]*\n)*lowrank: error: [^\n]+\n$/);
      expect(run.stderr).toMatch(message);
      expect(existsSync(out)).toBe(false);
    }
  });
});

describe("lowrank generate", () => {
  test("greedy tokens are the same with and without the key/value cache", () => {
    const args = [
      "generate",
      "--model",
      requireFixture("llama-tiny"),
      "--adapter",
      requireFixture("llama-tiny-lora"),
      "--prompt-ids",
      "5,17,42",
      "--max-new-tokens",
      "12",
      "--json",
    ];
    const cached = lowrank(args);
    const uncached = lowrank([...args, "--no-cache"]);
    expect(cached.status, cached.stderr).toBe(0);
    expect(JSON.parse(cached.stdout).ids).toHaveLength(12);
    expect(JSON.parse(cached.stdout)).toEqual(JSON.parse(uncached.stdout));
  });

  test("text prompts need a tokenizer", () => {
    const run = lowrank(["generate", "--model", requireFixture("gpt2-tiny"), "--prompt", "hello"]);
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/has no tokenizer.json; give the prompt as token ids/);
  });
});
