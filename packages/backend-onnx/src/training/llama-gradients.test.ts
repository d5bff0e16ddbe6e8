import * as tf from "@tensorflow/tfjs";
import { describe, expect, test } from "vitest";
import { createLoraConfig, type LoraConfigInput } from "@lowrank/core";
import { SeededRandom, type TrainerOptions } from "@lowrank/core/internal";
import { maxAbsDiff, requireFixture } from "@lowrank/core/testing";
import { loadModel, selectEngine } from "@lowrank/backend-tfjs";
import { createLoraTraining, Trainer } from "@lowrank/backend-tfjs/internal";
import { createOnnxLoraTraining } from "./create-onnx-lora-training.js";
import { OnnxLoraTrainer } from "./onnx-trainer.js";
import { runBatch } from "./training-session.js";

const dir = requireFixture("llama-tiny");
// The fixture adapter's shape: every projection, rsLoRA, a rank and an alpha pattern; B random so
// that every gradient is non-trivial. llama-tiny has grouped-query attention (4 heads, 2 kv heads).
const lora: LoraConfigInput = {
  r: 8,
  lora_alpha: 16,
  use_rslora: true,
  init_lora_weights: false,
  lora_dropout: 0,
  target_modules: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
  rank_pattern: { "layers.1.mlp.down_proj": 4 },
  alpha_pattern: { "layers.0.self_attn.v_proj": 32 },
};
const rng = new SeededRandom(21);
const lengths = [13, 9, 12];
const ids = lengths.map((n) => Array.from({ length: 13 }, (_, t) => (t < n ? Math.floor(rng.next() * 512) : 0)));
const labels = ids.map((row, b) => row.map((id, t) => (t < lengths[b]! ? id : -100)));

describe("the ONNX training graph against the tfjs backend (LLaMA: RMSNorm, RoPE, GQA, SwiGLU)", () => {
  // mistral-sw-tiny: a sliding window of 4 on 13-token rows, so the window shapes every gradient.
  test.each(["llama-tiny", "mistral-sw-tiny"])("%s: same initial factors, same loss, and every A/B gradient within 1e-4 relative", async (fixture) => {
    await selectEngine();
    const dir = requireFixture(fixture);
    const training = await createOnnxLoraTraining({ model: dir, lora, seed: 7 });
    const onnx = await runBatch(training.session, { slots: training.slots, ids, labels, factors: training.params, gradients: true });
    await training.release();
    const model = await loadModel(dir);
    const tfjsTraining = createLoraTraining(model, createLoraConfig({ ...lora, task_type: "CAUSAL_LM" }), { seed: 7 });
    try {
      expect([...tfjsTraining.variables.keys()].sort()).toEqual([...training.params.keys()].sort());
      for (const [key, variable] of tfjsTraining.variables) expect(maxAbsDiff(variable.dataSync() as Float32Array, training.params.get(key)!), key).toBe(0);
      const names = new Map([...tfjsTraining.variables].map(([key, v]) => [v.name, key]));
      const { value, grads } = tf.variableGrads(
        () =>
          tf.tidy(() => {
            const out = model.forward(
              { inputIds: tf.tensor2d(ids, undefined, "int32"), attentionMask: labels.map((r) => r.map((l) => (l < 0 ? 0 : 1))) },
              { training: true, seed: 0, dropoutCalls: 0 },
            );
            const [b, s, vocab] = out.logits.shape as [number, number, number];
            const logProbs = tf.logSoftmax(tf.slice(out.logits, [0, 0, 0], [b, s - 1, vocab]).reshape([-1, vocab]));
            const next = labels.flatMap((row) => row.slice(1));
            const weights = tf.tensor2d(
              next.map((l) => (l < 0 ? 0 : 1)),
              [next.length, 1],
            );
            const picked = tf.sum(
              tf.mul(
                logProbs,
                tf.mul(
                  tf
                    .oneHot(
                      next.map((l) => Math.max(l, 0)),
                      vocab,
                    )
                    .toFloat(),
                  weights,
                ),
              ),
            );
            return tf.neg(tf.div(picked, tf.sum(weights))) as tf.Scalar;
          }),
        [...tfjsTraining.variables.values()],
      );
      expect(Math.abs(value.dataSync()[0]! - onnx.loss)).toBeLessThanOrEqual(1e-5 * onnx.loss);
      expect(Object.keys(grads)).toHaveLength(onnx.grads.size);
      for (const [variableName, g] of Object.entries(grads)) {
        const key = names.get(variableName)!;
        const theirs = g.dataSync() as Float32Array;
        const scale = theirs.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        expect(scale, key).toBeGreaterThan(0);
        expect(maxAbsDiff(onnx.grads.get(key)!, theirs), key).toBeLessThanOrEqual(1e-4 * scale);
      }
      tf.dispose([value, ...Object.values(grads)]);
    } finally {
      model.store.dispose();
    }
  });

  test("20 steps give the tfjs trainer's losses within 1e-3", async () => {
    await selectEngine();
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
    const plain = { ...lora, init_lora_weights: true };
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
