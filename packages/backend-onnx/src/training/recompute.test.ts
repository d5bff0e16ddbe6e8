import { describe, expect, test } from "vitest";
import { Checkpoint, createLoraConfig, describeModel } from "@lowrank/core";
import { SeededRandom } from "@lowrank/core/internal";
import { maxAbsDiff, requireFixture } from "@lowrank/core/testing";
import { trainingArchitecture } from "./architectures.js";
import { initialFactors, planLoraSlots } from "./lora-plan.js";
import { chooseRecompute, heldActivationBytes } from "./recompute-choice.js";
import { buildTrainingGraph, type TrainedParameter } from "./training-graph.js";
import { openGraphSession, runBatch, type BatchResult } from "./training-session.js";

// Padded rows: the recomputed pass must see the same mask and positions as the first.
const rng = new SeededRandom(41);
const lengths = [12, 8];
const ids = lengths.map((n) => Array.from({ length: 12 }, (_, t) => (t < n ? Math.floor(rng.next() * 500) : 0)));
const labels = ids.map((row, b) => row.map((id, t) => (t < lengths[b]! ? id : -100)));

/** Loss and gradients of one batch through the graph built with and without recomputation, and the graph's recompute nodes. */
async function bothWays(dir: string, options: { full: boolean; dropout: boolean }) {
  const cp = await Checkpoint.open(dir);
  const architecture = trainingArchitecture(cp.config, dir);
  const layers = Number(cp.config.n_layer ?? cp.config.num_hidden_layers);
  const config = createLoraConfig({
    r: 4,
    lora_alpha: 8,
    target_modules: "all-linear",
    init_lora_weights: false,
    lora_dropout: options.dropout ? 0.2 : 0,
    bias: options.full ? "none" : "all",
    fan_in_fan_out: cp.config.model_type === "gpt2",
    task_type: "CAUSAL_LM",
  });
  const { slots } = options.full
    ? { slots: [] }
    : planLoraSlots({ config, description: describeModel(cp.config, cp.tensorInfo()), supported: architecture.supports, label: dir });
  const biases = [...cp.tensorInfo().keys()].filter((n) => n.endsWith(".bias"));
  await cp.close();
  const factors = initialFactors(slots, config, 5);
  const maskRng = new SeededRandom(8);
  const masks = new Map(
    slots.map((s) => [s.module, Float32Array.from({ length: ids.length * 12 * s.inFeatures }, () => (maskRng.next() < 0.2 ? 0 : 1 / 0.8))]),
  );
  const results: BatchResult[] = [];
  let recomputeNodes = 0;
  for (const recompute of [false, true]) {
    const parameters = new Map<string, TrainedParameter>();
    // LoRA: PEFT's bias "all" makes every bias a trained graph input beside the factors.
    const trained = options.full ? undefined : { names: new Map(biases.map((b) => [b, b])), parameters };
    const model = await buildTrainingGraph({
      dir,
      architecture,
      slots,
      dropout: options.dropout,
      gradients: true,
      recompute,
      ...(options.full ? { full: parameters } : { trained }),
    });
    if (recompute) recomputeNodes = model.graph.node.filter((n) => n.name.startsWith("/recompute/Reshape")).length;
    const { session } = await openGraphSession(model, {});
    try {
      results.push(await runBatch(session, { slots, ids, labels, factors, parameters, gradients: true, ...(options.dropout ? { masks } : {}) }));
    } finally {
      await session.release();
    }
  }
  return { held: results[0]!, recomputed: results[1]!, recomputeNodes, layers };
}

describe("activation recomputation (gradient checkpointing) in the ONNX training graph", () => {
  test.each([
    ["gpt2-tiny", false, true],
    ["gpt2-tiny", true, false],
    ["llama-tiny", false, true],
    ["gemma2-tiny", false, false],
    ["mistral-sw-tiny", true, false],
    ["phi3-tiny", false, false],
  ])("%s (full %s, dropout %s): one recomputed pass per block, the same loss and gradients as holding the activations", async (name, full, dropout) => {
    const { held, recomputed, recomputeNodes, layers } = await bothWays(requireFixture(name), { full, dropout });
    expect(recomputeNodes).toBe(layers);
    expect(Math.abs(recomputed.loss - held.loss)).toBeLessThanOrEqual(1e-6 * held.loss);
    expect(held.grads.size).toBeGreaterThan(0);
    expect([...recomputed.grads.keys()].sort()).toEqual([...held.grads.keys()].sort());
    for (const [key, grad] of held.grads) {
      const scale = grad.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      expect(scale, key).toBeGreaterThan(0);
      // The same operations on the same values; ONNX Runtime fuses the two graphs differently, which
      // moves float32 sums by an ulp or two (observed ≤ 1.4e-6 of the largest gradient).
      expect(maxAbsDiff(recomputed.grads.get(key)!, grad), key).toBeLessThanOrEqual(1e-5 * scale);
    }
  });
});

describe("when the onnx trainer recomputes", () => {
  // GPT-2 small: 12 blocks of 768, MLP 3072, 12 heads.
  const gpt2Small = { n_layer: 12, n_embd: 768, n_head: 12 };
  test("the held activations of a decoder scale with batch × length (and the length once more for attention)", () => {
    expect(heldActivationBytes(gpt2Small, 16, 128)).toBe(4 * 16 * 128 * 12 * (2 * 768 + 3072 + 12 * 128));
    expect(heldActivationBytes({ num_hidden_layers: 2, hidden_size: 64, num_attention_heads: 4, intermediate_size: 100 }, 1, 8)).toBe(
      4 * 8 * 2 * (128 + 100 + 32),
    );
    expect(heldActivationBytes({ model_type: "bert" }, 4, 128)).toBeUndefined();
  });

  test("as asked; else only when the activations would take more than half the free memory, said in the log", () => {
    const warnings: string[] = [];
    const logger = { warn: (m: string) => warnings.push(m), info: () => {} };
    const run = { config: gpt2Small, batch: 16, seq: 128, logger };
    const held = heldActivationBytes(gpt2Small, 16, 128)!;
    expect(chooseRecompute(false, { ...run, freeBytes: 1 })).toBe(false);
    expect(chooseRecompute(true, { ...run, freeBytes: 1e12 })).toBe(true);
    expect(warnings).toEqual([]);
    expect(chooseRecompute(undefined, { ...run, freeBytes: 2 * held })).toBe(false);
    expect(chooseRecompute(undefined, { ...run, freeBytes: 2 * held - 1 })).toBe(true);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/recomputing them per block .*--no-gradient-checkpointing/);
    expect(chooseRecompute(undefined, { config: {}, batch: 16, seq: 128, freeBytes: 1 })).toBe(false);
  });
});
