import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createLoraConfig, readAdapter } from "@lowrank/core";
import { restoreTrainingCheckpoint, saveTrainingCheckpoint } from "@lowrank/core/internal";
import { requireFixture, sharedDir } from "@lowrank/core/testing";
import type { Example } from "../data/read-examples.js";
import { selectEngine } from "../engine/select-engine.js";
import { loadModel } from "../models/load-model.js";
import { tfjsStepper } from "./tfjs-stepper.js";
import { createLoraTraining } from "./trainable.js";
import { Trainer, type StepLog } from "./trainer.js";

let tmp: string;
beforeAll(async () => {
  await selectEngine();
  tmp = await mkdtemp(path.join(os.tmpdir(), "lowrank-train-"));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** Real text (E2E references) as byte-level ids, which fit the tiny fixtures' 512-token vocabulary. */
function e2eExamples(count: number, seqLen: number): Example[] {
  const lines = readFileSync(path.join(sharedDir(), "data", "e2e", "valid.txt"), "utf8")
    .split("\n")
    .filter(Boolean);
  return lines.slice(0, count).map((line) => ({ ids: [...Buffer.from(line.split("||")[1] ?? line, "utf8")].slice(0, seqLen) }));
}

const config = () => createLoraConfig({ r: 4, lora_alpha: 8, target_modules: ["c_attn", "c_proj"], lora_dropout: 0.1, task_type: "CAUSAL_LM" });
const options = {
  task: "causal-lm" as const,
  learningRate: 5e-3,
  batchSize: 4,
  seed: 11,
  padTokenId: 0,
  warmupSteps: 2,
  schedule: "linear" as const,
  weightDecay: 0.01,
  maxGradNorm: 1,
  gradientAccumulation: 2,
};

async function setup(steps: number) {
  const model = await loadModel(requireFixture("gpt2-tiny"));
  const training = createLoraTraining(model, config(), { seed: 5 });
  const trainer = new Trainer(model, training, e2eExamples(48, 48), { ...options, steps });
  return { model, training, trainer, stepper: tfjsStepper({ model, trainable: training, trainer, device: "test" }) };
}

describe("LoRA training on TensorFlow.js", () => {
  test("only LoRA factors are trainable, and the loss falls on real text", async () => {
    const { model, training, trainer } = await setup(30);
    expect([...training.variables.keys()].every((k) => /lora_[AB]\.weight$/.test(k))).toBe(true);
    // Per layer: c_attn (4×64 + 192×4), attn.c_proj (4×64 + 64×4), mlp.c_proj (4×256 + 64×4).
    expect(training.parameterCount).toBe(2 * (4 * 64 + 192 * 4 + 4 * 64 + 64 * 4 + 4 * 256 + 64 * 4));
    const before = trainer.evaluate(e2eExamples(48, 48));
    const logs: StepLog[] = [];
    for (let i = 0; i < 30; i++) logs.push(trainer.trainStep());
    const after = trainer.evaluate(e2eExamples(48, 48));
    const mean = (xs: StepLog[]) => xs.reduce((s, l) => s + l.loss, 0) / xs.length;
    expect(mean(logs.slice(-5))).toBeLessThan(mean(logs.slice(0, 5)));
    expect(after.loss).toBeLessThan(before.loss);
    expect(after.perplexity).toBeCloseTo(Math.exp(after.loss), 6);
    expect(logs[0]!.learningRate).toBe(0);
    expect(logs.every((l) => l.gradNorm > 0 && l.tokens > 0)).toBe(true);

    const dir = path.join(tmp, "adapter");
    const { writeAdapter } = await import("@lowrank/core");
    await writeAdapter(dir, training.exportAdapter());
    const saved = await readAdapter(dir);
    expect(saved.config.inference_mode).toBe(true);
    expect([...saved.tensors.keys()].sort()).toEqual([...training.variables.keys()].sort());
    expect(saved.tensors.get("base_model.model.transformer.h.0.attn.c_attn.lora_B.weight")!.shape).toEqual([192, 4]);
    trainer.dispose();
    model.store.dispose();
  });

  test("resuming from a mid-run checkpoint gives the same next losses", async () => {
    const straight = await setup(12);
    const full: number[] = [];
    for (let i = 0; i < 12; i++) full.push(straight.trainer.trainStep().loss);

    const first = await setup(12);
    const log: StepLog[] = [];
    for (let i = 0; i < 6; i++) log.push(first.trainer.trainStep());
    const checkpoint = path.join(tmp, "checkpoint-6");
    await saveTrainingCheckpoint(checkpoint, first.stepper, { seed: 11, log, baseDir: requireFixture("gpt2-tiny") });

    const resumed = await setup(12);
    const restoredLog = await restoreTrainingCheckpoint(checkpoint, resumed.stepper);
    expect(restoredLog.map((l) => l.loss)).toEqual(full.slice(0, 6));
    const next: number[] = [];
    for (let i = 6; i < 12; i++) next.push(resumed.trainer.trainStep().loss);
    next.forEach((loss, i) => expect(loss).toBeCloseTo(full[6 + i]!, 6));
  });

  test("no tensor leaks: the tensor count after step 10 equals the count after step 60", async () => {
    const { trainer } = await setup(60);
    let afterTen = 0;
    for (let i = 1; i <= 60; i++) {
      trainer.trainStep();
      if (i === 10) afterTen = tf.memory().numTensors;
    }
    expect(tf.memory().numTensors).toBe(afterTen);
  });
});
