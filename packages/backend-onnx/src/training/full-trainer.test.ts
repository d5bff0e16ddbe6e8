import { mkdtemp, readdir, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { restoreTrainingCheckpoint, saveTrainingCheckpoint, SeededRandom, type TrainerOptions, type TrainingExample } from "@lowrank/core/internal";
import { requireFixture } from "@lowrank/core/testing";
import { loadModel, selectEngine } from "@lowrank/backend-tfjs";
import { createFullTraining, Trainer } from "@lowrank/backend-tfjs/internal";
import { createOnnxFullTraining } from "./create-onnx-full-training.js";
import { onnxFullStepper } from "./onnx-stepper.js";
import { OnnxLoraTrainer } from "./onnx-trainer.js";

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "lowrank-onnx-full-"));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

function examples(seed: number, count: number): TrainingExample[] {
  const data = new SeededRandom(seed);
  return Array.from({ length: count }, () => ({ ids: Array.from({ length: 6 + Math.floor(data.next() * 20) }, () => Math.floor(data.next() * 512)) }));
}

const options: TrainerOptions = {
  task: "causal-lm",
  learningRate: 1e-3,
  batchSize: 4,
  seed: 2,
  padTokenId: 0,
  warmupSteps: 3,
  schedule: "cosine",
  weightDecay: 0.01,
  maxGradNorm: 1,
  gradientAccumulation: 2,
};

async function onnxRun(dir: string, steps: number) {
  const training = await createOnnxFullTraining({ model: dir });
  const trainer = new OnnxLoraTrainer(training.session, [], training.params, examples(4, 48), { ...options, steps }, { parameters: training.parameters });
  return { training, trainer, stepper: onnxFullStepper(training, trainer) };
}

describe.each(["gpt2-tiny", "llama-tiny"])("full fine-tuning (--full) of %s on ONNX Runtime", (fixture) => {
  const dir = requireFixture(fixture);

  test("20 steps give the tfjs trainer's losses within 1e-3; the written checkpoint loads and predicts as trained", async () => {
    await selectEngine();
    const model = await loadModel(dir);
    const tfjs = new Trainer(model, createFullTraining(model), examples(4, 48), { ...options, steps: 20 });
    const { training, trainer, stepper } = await onnxRun(dir, 20);
    try {
      expect(stepper.kind).toBe("full");
      expect(trainer.totalSteps).toBe(tfjs.totalSteps);
      const diffs: number[] = [];
      const losses: number[] = [];
      const log = [];
      for (let i = 0; i < 20; i++) {
        const theirs = tfjs.trainStep();
        const ours = await trainer.trainStep();
        expect(ours).toMatchObject({ step: theirs.step, epoch: theirs.epoch, tokens: theirs.tokens, learningRate: theirs.learningRate });
        expect(Math.abs(ours.gradNorm - theirs.gradNorm), `step ${i + 1}`).toBeLessThanOrEqual(1e-3 * theirs.gradNorm);
        diffs.push(Math.abs(ours.loss - theirs.loss));
        losses.push(ours.loss);
        log.push(ours);
      }
      expect(Math.max(...diffs)).toBeLessThanOrEqual(1e-3);
      expect(losses.slice(-4).reduce((a, b) => a + b) / 4).toBeLessThan(losses.slice(0, 4).reduce((a, b) => a + b) / 4);
      const held = examples(9, 12);
      const ours = await trainer.evaluate(held);
      expect(Math.abs(ours.loss - tfjs.evaluate(held).loss)).toBeLessThanOrEqual(1e-3);

      // The checkpoint is a model folder under the checkpoint's names, float32; the tfjs backend loads it and predicts the same loss.
      const out = path.join(tmp, `${fixture}-checkpoint-20`);
      await saveTrainingCheckpoint(out, stepper, { seed: 2, log, baseDir: dir });
      expect(await readdir(out)).toEqual(expect.arrayContaining(["config.json", "model.safetensors", "trainer_state.json", "optimizer.safetensors"]));
      const written = stepper.weights({ checkpoint: false });
      expect(written.kind).toBe("full");
      if (written.kind === "full") for (const t of written.tensors.values()) expect(t.dtype).toBe("F32");
      const loaded = await loadModel(out);
      const predictor = new Trainer(loaded, createFullTraining(loaded), held, { ...options, steps: 1 });
      try {
        expect(Math.abs(predictor.evaluate(held).loss - ours.loss)).toBeLessThanOrEqual(1e-4);
      } finally {
        predictor.dispose();
        loaded.store.dispose();
      }
    } finally {
      tfjs.dispose();
      model.store.dispose();
      await training.release();
    }
  });

  test("resuming from a mid-run checkpoint gives the same next losses", async () => {
    const straight = await onnxRun(dir, 6);
    const full: number[] = [];
    for (let i = 0; i < 6; i++) full.push((await straight.trainer.trainStep()).loss);
    await straight.training.release();

    const first = await onnxRun(dir, 6);
    const log = [];
    for (let i = 0; i < 3; i++) log.push(await first.trainer.trainStep());
    const checkpoint = path.join(tmp, `${fixture}-checkpoint-3`);
    await saveTrainingCheckpoint(checkpoint, first.stepper, { seed: 2, log, baseDir: dir });
    await first.training.release();

    const resumed = await onnxRun(dir, 6);
    expect((await restoreTrainingCheckpoint(checkpoint, resumed.stepper)).map((l) => l.loss)).toEqual(full.slice(0, 3));
    expect(resumed.trainer.currentStep).toBe(3);
    for (let i = 3; i < 6; i++) expect((await resumed.trainer.trainStep()).loss).toBeCloseTo(full[i]!, 6);
    await resumed.training.release();
  });
});
