import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { adapterKey } from "../adapter/adapter-keys.js";
import { readAdapter } from "../adapter/read-adapter.js";
import type { TrainEvent, TrainParams } from "../backend/backend.js";
import { createLoraConfig } from "../config/lora-config.js";
import { float32Tensor, toFloat32 } from "../formats/safetensors/dtype.js";
import { captureLowrankRejection } from "../testing/capture-error.js";
import { runTraining } from "./run-training.js";
import type { StepLog } from "./trainer-types.js";
import type { TrainingExample } from "./batches.js";
import type { PrepareTrainingStepper } from "./training-stepper.js";

const tmp = mkdtempSync(path.join(os.tmpdir(), "lowrank-run-training-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const data = path.join(tmp, "train.jsonl");
writeFileSync(data, ["[1, 2, 3]", "[4, 5]", "[6, 7, 8, 9]"].map((ids) => `{"input_ids": ${ids}}`).join("\n"));
const KEY = adapterKey("q", "lora_A");

/** A stepper whose one parameter counts the steps; its loss is `1/step`, or NaN at `divergeAt`. */
function fakeBackend(options: { totalSteps: number; divergeAt?: number; released?: string[]; skipData?: boolean }): PrepareTrainingStepper {
  return async ({ readData }) => {
    const examples = options.skipData ? [] : await readData({ task: "causal-lm", vocabSize: 10 });
    const value = new Float32Array([0]);
    let step = 0;
    return {
      kind: "lora",
      device: "fake",
      trainableParameters: 1,
      totalParameters: 10,
      trainer: {
        totalSteps: options.totalSteps,
        get currentStep() {
          return step;
        },
        async trainStep(): Promise<StepLog> {
          step += 1;
          value[0] = step;
          const loss = step === options.divergeAt ? NaN : 1 / step;
          return { step, epoch: 0, loss, learningRate: 0.1, gradNorm: 1, tokens: examples.length, tokensPerSecond: 1, seconds: 1 };
        },
        evaluate: (examples) => ({ loss: step, perplexity: Math.exp(step), examples: examples.length }),
        getState: () => ({ step, optimizer: { step, m: new Map([[KEY, value.slice()]]), v: new Map([[KEY, value.slice()]]) } }),
        setState: (state) => void (step = state.step),
      },
      restoreWeights: (checkpoint) => value.set(toFloat32(checkpoint.weights.get(KEY)!)),
      weights: () => ({
        kind: "lora",
        adapter: { config: createLoraConfig({ r: 1, target_modules: ["q"] }), tensors: new Map([[KEY, float32Tensor(value.slice(), [1, 1])]]) },
      }),
      release: async () => void options.released?.push("released"),
    };
  };
}

async function drain(events: AsyncGenerator<TrainEvent>): Promise<TrainEvent[]> {
  const all: TrainEvent[] = [];
  for await (const e of events) all.push(e);
  return all;
}

describe("runTraining", () => {
  test("events in order, evals and checkpoints on their cadence (not at the last step), the adapter and summary written", async () => {
    const out = path.join(tmp, "run");
    const released: string[] = [];
    const params: TrainParams = { model: tmp, data, out, evalData: data, evalEvery: 2, saveEvery: 3, seed: 7 };
    const events = await drain(runTraining(fakeBackend({ totalSteps: 6, released }), params, { backend: "fake" }));
    expect(events.map((e) => `${e.type}${"step" in e ? e.step : ""}`)).toEqual([
      "start",
      "step1",
      "step2",
      "eval2",
      "step3",
      "checkpoint3",
      "step4",
      "eval4",
      "step5",
      "step6",
      "eval6",
      "done",
    ]);
    expect(events[0]).toEqual({ type: "start", totalSteps: 6, startStep: 0, trainableParameters: 1, totalParameters: 10, examples: 3, device: "fake" });
    expect(events.at(-1)).toMatchObject({ type: "done", out, steps: 6, finalLoss: 1 / 6 });
    expect(released).toEqual(["released"]);
    expect(readdirSync(out).sort()).toEqual(["adapter_config.json", "adapter_model.safetensors", "checkpoint-3", "training_summary.json"]);
    expect(readdirSync(path.join(out, "checkpoint-3")).sort()).toEqual([
      "adapter_config.json",
      "adapter_model.safetensors",
      "optimizer.safetensors",
      "trainer_state.json",
    ]);
    expect(JSON.parse(readFileSync(path.join(out, "training_summary.json"), "utf8"))).toMatchObject({
      steps: 6,
      seed: 7,
      eval_loss: 6,
      backend: "fake",
      device: "fake",
    });
    expect(toFloat32((await readAdapter(out)).tensors.get(KEY)!)[0]).toBe(6);
  });

  test("resuming continues after the checkpoint's step, its log kept in the summary", async () => {
    const out = path.join(tmp, "first");
    await drain(runTraining(fakeBackend({ totalSteps: 6 }), { model: tmp, data, out, saveEvery: 4 }, { backend: "fake" }));
    const resumed = path.join(tmp, "resumed");
    const events = await drain(
      runTraining(fakeBackend({ totalSteps: 6 }), { model: tmp, data, out: resumed, resume: path.join(out, "checkpoint-4") }, { backend: "fake" }),
    );
    expect(events[0]).toMatchObject({ type: "start", startStep: 4 });
    expect(events.filter((e) => e.type === "step").map((e) => e.step)).toEqual([5, 6]);
    expect(JSON.parse(readFileSync(path.join(resumed, "training_summary.json"), "utf8")).losses).toHaveLength(6);
  });

  test("a non-finite loss stops the run in one line naming the last good checkpoint; no adapter is written", async () => {
    const out = path.join(tmp, "diverged");
    const released: string[] = [];
    const error = await captureLowrankRejection(
      drain(runTraining(fakeBackend({ totalSteps: 6, divergeAt: 3, released }), { model: tmp, data, out, saveEvery: 2 }, { backend: "fake" })),
    );
    const last = path.join(out, "checkpoint-2");
    expect(error.code).toBe("TRAINING_DIVERGED");
    expect(error.message).toBe(
      `training diverged at step 3: loss NaN, gradient norm 1 (lower --lr or set --max-grad-norm); the last good checkpoint is ${last} (continue with ` +
        `--resume ${last}); no adapter was written`,
    );
    expect(existsSync(path.join(out, "adapter_model.safetensors"))).toBe(false);
    expect(released).toEqual(["released"]);
    const none = await captureLowrankRejection(
      drain(runTraining(fakeBackend({ totalSteps: 6, divergeAt: 1 }), { model: tmp, data, out: path.join(tmp, "never") }, { backend: "fake" })),
    );
    expect(none.message).toMatch(/; no checkpoint was saved before it \(use --save-every N\); no adapter was written$/);
  });

  test("a backend that never reads the data is refused", async () => {
    const released: string[] = [];
    const error = await captureLowrankRejection(
      drain(runTraining(fakeBackend({ totalSteps: 1, skipData: true, released }), { model: tmp, data, out: path.join(tmp, "x") }, { backend: "fake" })),
    );
    expect([error.code, error.message]).toEqual(["BACKEND_INVALID", "the fake backend prepared a training run without reading its data (readData)"]);
    expect(released).toEqual(["released"]);
  });

  test("with packing, the training data reaches the backend packed (segments, positions) and the evaluation data as it is", async () => {
    let seen: TrainingExample[] = [];
    const prepare: PrepareTrainingStepper = async (args) => {
      const stepper = await fakeBackend({ totalSteps: 1 })({
        ...args,
        readData: async (format) => {
          seen = await args.readData(format);
          return seen;
        },
      });
      return stepper;
    };
    await drain(runTraining(prepare, { model: tmp, data, out: path.join(tmp, "packed"), packing: true, seqLen: 64 }, { backend: "fake" }));
    expect(seen.length).toBeGreaterThan(0);
    for (const e of seen) {
      expect(e.segments).toHaveLength(e.ids.length);
      expect(e.positions).toHaveLength(e.ids.length);
      expect(e.ids.length).toBeLessThanOrEqual(64);
    }
    expect(seen.some((e) => new Set(e.segments).size > 1)).toBe(true);
  });
});
