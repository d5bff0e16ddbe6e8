import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createLoraConfig, type LoraConfigInput } from "@lowrank/core";
import { SeededRandom, type TrainerOptions } from "@lowrank/core/internal";
import { maxAbsDiff, requireFixture } from "@lowrank/core/testing";
import { loadModel, selectEngine } from "@lowrank/backend-tfjs";
import { createLoraTraining, Trainer } from "@lowrank/backend-tfjs/internal";
import { createOnnxLoraTraining } from "./create-onnx-lora-training.js";
import { fixtureVariant, leadingBlock } from "./fixture-variant.test-util.js";
import { OnnxLoraTrainer } from "./onnx-trainer.js";
import { tfjsLossAndGradients } from "./tfjs-gradients.test-util.js";
import { runBatch } from "./training-session.js";

const SEPARATE = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];
const FUSED = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"];

// Every supported projection, rsLoRA, a rank and an alpha pattern; B random so that every gradient is non-trivial.
const loraOn = (modules: string[]): LoraConfigInput => ({
  r: 8,
  lora_alpha: 16,
  use_rslora: true,
  init_lora_weights: false,
  lora_dropout: 0,
  target_modules: modules,
  rank_pattern: { "layers.1.mlp.down_proj": 4 },
  alpha_pattern: { [`layers.0.self_attn.${modules[0] === "qkv_proj" ? "qkv_proj" : "v_proj"}`]: 32 },
});

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "lowrank-onnx-decoders-"));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** Gemma-2 with head_dim 8 ≠ hidden / heads = 16: q, k, v keep their leading rows, o_proj its leading columns. */
const gemma2HeadDim8 = () =>
  fixtureVariant({
    name: "gemma2-tiny",
    dir: path.join(tmp, "gemma2-head-dim-8"),
    config: { head_dim: 8 },
    tensor: (name, t) => {
      const [rows, cols] = t.shape as [number, number];
      if (/self_attn\.[qkv]_proj\.weight$/.test(name)) return leadingBlock(t, rows / 2, cols);
      if (name.endsWith("self_attn.o_proj.weight")) return leadingBlock(t, rows, cols / 2);
      return t;
    },
  });

// 13-token rows: longer than every window below, so the windows shape the gradients.
const CASES: [string, string[], () => Promise<string>][] = [
  ["llama-tiny (grouped-query attention, 4 heads on 2 kv heads)", SEPARATE, async () => requireFixture("llama-tiny")],
  ["mistral-sw-tiny (sliding window 4)", SEPARATE, async () => requireFixture("mistral-sw-tiny")],
  ["phi3-tiny (fused qkv_proj and gate_up_proj)", FUSED, async () => requireFixture("phi3-tiny")],
  [
    "phi3-tiny with sliding_window 4 (a window of 5)",
    FUSED,
    () => fixtureVariant({ name: "phi3-tiny", dir: path.join(tmp, "phi3-window"), config: { sliding_window: 4 } }),
  ],
  ["gemma-tiny (x·(1 + w) norms, scaled embeddings, GeGLU, one kv head)", SEPARATE, async () => requireFixture("gemma-tiny")],
  ["gemma2-tiny (soft caps, sandwich norms, window 4 on even layers, query_pre_attn_scalar)", SEPARATE, async () => requireFixture("gemma2-tiny")],
  ["gemma2-tiny with head_dim 8", SEPARATE, gemma2HeadDim8],
];

const rng = new SeededRandom(21);
const lengths = [13, 9, 12];
const ids = lengths.map((n) => Array.from({ length: 13 }, (_, t) => (t < n ? Math.floor(rng.next() * 512) : 0)));
const labels = ids.map((row, b) => row.map((id, t) => (t < lengths[b]! ? id : -100)));

describe("the ONNX training graph against the tfjs backend (the LLaMA family as core's decoderOptions describes it)", () => {
  test.each(CASES)("%s: same initial factors, the loss within 1e-5 and every A/B gradient within 1e-4 relative", async (_, modules, model) => {
    await selectEngine();
    const dir = await model();
    const lora = loraOn(modules);
    const training = await createOnnxLoraTraining({ model: dir, lora, seed: 7 });
    const onnx = await runBatch(training.session, { slots: training.slots, ids, labels, factors: training.params, gradients: true });
    await training.release();
    expect(new Set(training.slots.map((slot) => slot.module.split(".").at(-1)))).toEqual(new Set(modules));
    const tfjsModel = await loadModel(dir);
    const tfjsTraining = createLoraTraining(tfjsModel, createLoraConfig({ ...lora, task_type: "CAUSAL_LM" }), { seed: 7 });
    try {
      expect([...tfjsTraining.variables.keys()].sort()).toEqual([...training.params.keys()].sort());
      for (const [key, variable] of tfjsTraining.variables) expect(maxAbsDiff(variable.dataSync() as Float32Array, training.params.get(key)!), key).toBe(0);
      const theirs = tfjsLossAndGradients(tfjsModel, tfjsTraining, ids, labels);
      expect(Math.abs(theirs.loss - onnx.loss)).toBeLessThanOrEqual(1e-5);
      expect(theirs.grads.size).toBe(onnx.grads.size);
      for (const [key, grad] of theirs.grads) {
        const scale = grad.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        expect(scale, key).toBeGreaterThan(0);
        expect(maxAbsDiff(onnx.grads.get(key)!, grad), key).toBeLessThanOrEqual(1e-4 * scale);
      }
    } finally {
      tfjsModel.store.dispose();
    }
  });

  test.each([
    ["llama-tiny", SEPARATE],
    ["phi3-tiny", FUSED],
    ["gemma-tiny", SEPARATE],
    ["gemma2-tiny", SEPARATE],
  ])("%s: 20 steps give the tfjs trainer's losses within 1e-3", async (fixture, modules) => {
    await selectEngine();
    const dir = requireFixture(fixture);
    const data = new SeededRandom(4);
    const examples = Array.from({ length: 24 }, () => ({ ids: Array.from({ length: 6 + Math.floor(data.next() * 20) }, () => Math.floor(data.next() * 512)) }));
    const options: TrainerOptions = {
      task: "causal-lm",
      learningRate: 3e-3,
      batchSize: 4,
      seed: 2,
      padTokenId: 0,
      warmupSteps: 3,
      schedule: "cosine",
      weightDecay: 0.01,
      maxGradNorm: 1,
      steps: 20,
    };
    const plain = { ...loraOn(modules), init_lora_weights: true };
    const training = await createOnnxLoraTraining({ model: dir, lora: plain, seed: 9 });
    const model = await loadModel(dir);
    const tfjs = new Trainer(model, createLoraTraining(model, createLoraConfig({ ...plain, task_type: "CAUSAL_LM" }), { seed: 9 }), examples, options);
    const trainer = new OnnxLoraTrainer(training.session, training.slots, training.params, examples, options);
    try {
      for (let i = 0; i < 20; i++) {
        const theirs = tfjs.trainStep();
        const ours = await trainer.trainStep();
        expect(Math.abs(ours.loss - theirs.loss), `step ${i + 1}`).toBeLessThanOrEqual(1e-3);
      }
    } finally {
      tfjs.dispose();
      model.store.dispose();
      await training.release();
    }
  });
});
