import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createLoraConfig, float32Tensor, readAdapter, readSafetensors, toFloat32, writeAdapter, writeSafetensors, type Tensor } from "@lowrank/core";
import { SeededRandom } from "@lowrank/core/internal";
import { idRows, maxAbsDiff, requireFixture } from "@lowrank/core/testing";
import { selectEngine } from "../engine/select-engine.js";
import { inferenceContext } from "../layers/lora-branch.js";
import { attachAdapter, detachAdapter, setMerged } from "../lora/attach-adapter.js";
import { createLoraTraining } from "../training/trainable.js";
import { Trainer } from "../training/trainer.js";
import { maskedSoftmax } from "./deberta-attention.js";
import { logBucketPosition } from "@lowrank/core/internal";
import { pairMask, relativeTableRows, skewToPairs } from "./deberta-relative-position.js";
import { convolveSequence } from "./deberta-v2.js";
import { loadModel } from "./load-model.js";
import type { TfjsModel } from "./model.js";

const tmp = mkdtempSync(path.join(os.tmpdir(), "lowrank-deberta-"));
beforeAll(async () => {
  await selectEngine();
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function run(model: TfjsModel, ids: number[][], mask?: number[][]): { logits: Float32Array; hidden: Float32Array } {
  return tf.tidy(() => {
    const out = model.forward({ inputIds: tf.tensor2d(ids, undefined, "int32"), attentionMask: mask }, inferenceContext());
    return { logits: out.logits.dataSync() as Float32Array, hidden: out.lastHiddenState.dataSync() as Float32Array };
  });
}

describe("deberta-v2-tiny-lora on tfjs (PEFT fixtures)", () => {
  test("base, adapted and merged logits and last_hidden_state match within 1e-4 (padded positions included)", async () => {
    const cases = (await readSafetensors(requireFixture("cases", "deberta-v2-tiny-lora.safetensors"))).tensors;
    const ids = idRows(cases.get("input_ids")!);
    const mask = idRows(cases.get("attention_mask")!);
    const model = await loadModel(requireFixture("deberta-v2-tiny"));
    expect(model.linears.get("deberta.encoder.layer.0.attention.self.query_proj")).toBeDefined();
    const expectMatch = (got: { logits: Float32Array; hidden: Float32Array }, kind: string) => {
      expect(maxAbsDiff(got.logits, toFloat32(cases.get(`${kind}_logits`)!)), `${kind}_logits`).toBeLessThanOrEqual(1e-4);
      expect(maxAbsDiff(got.hidden, toFloat32(cases.get(`${kind}_last_hidden_state`)!)), `${kind}_last_hidden_state`).toBeLessThanOrEqual(1e-4);
    };
    const base = run(model, ids, mask);
    expectMatch(base, "base");
    const attached = attachAdapter(model, await readAdapter(requireFixture("deberta-v2-tiny-lora")));
    expect([...attached.branches.keys()].sort()).toEqual(
      [0, 1].flatMap((i) => ["query_proj", "value_proj"].map((m) => `deberta.encoder.layer.${i}.attention.self.${m}`)),
    );
    expectMatch(run(model, ids, mask), "adapted");
    setMerged(model, true);
    expectMatch(run(model, ids, mask), "merged");
    setMerged(model, false);
    expectMatch(run(model, ids, mask), "adapted");
    detachAdapter(model, attached);
    expect(maxAbsDiff(run(model, ids, mask).logits, base.logits)).toBe(0);
  });
});

describe("relative positions", () => {
  test("distances up to position_buckets/2 are kept, longer ones are log-bucketed (buckets 32, max position 128)", () => {
    // 16 + ⌈15·ln(|d|/16)/ln(127/16)⌉: d = 17 → ⌈0.439⌉, 18 → ⌈0.853⌉, 19 → ⌈1.244⌉, 20 → ⌈1.616⌉,
    // 21 → ⌈1.969⌉, 22 → ⌈2.306⌉, 23 → ⌈2.628⌉; 127 → exactly 15.
    const bucket = (d: number) => logBucketPosition(d, 32, 128);
    for (let d = 0; d <= 16; d++) {
      expect(bucket(d)).toBe(d);
      expect(bucket(-d)).toBe(-d);
    }
    const expected = [17, 17, 18, 18, 18, 19, 19];
    expect([17, 18, 19, 20, 21, 22, 23].map(bucket)).toEqual(expected);
    expect([17, 18, 19, 20, 21, 22, 23].map((d) => bucket(-d))).toEqual(expected.map((b) => -b));
    expect(bucket(127)).toBe(31);
    expect(bucket(128)).toBe(32);
  });

  test("table rows per distance are clamped to [0, 2·span) in both orders", () => {
    const params = { buckets: 4, maxPosition: 8, span: 4 };
    // Distances −4 … 4: mid 2, so |d| ≤ 2 kept; 3 → 2 + ⌈ln 1.5/ln 3.5⌉ = 3, 4 → 2 + ⌈ln 2/ln 3.5⌉ = 3.
    expect(relativeTableRows(5, params).ascending).toEqual([1, 1, 2, 3, 4, 5, 6, 7, 7]);
    expect(relativeTableRows(5, params).descending).toEqual([7, 7, 6, 5, 4, 3, 2, 1, 1]);
    // Without buckets the distance itself, clamped.
    expect(relativeTableRows(4, { buckets: -1, maxPosition: 2, span: 2 }).ascending).toEqual([0, 0, 1, 2, 3, 3, 3]);
  });

  test("skewToPairs picks column s−1−a+b of row a", () => {
    const s = 3;
    const x = tf.tensor3d(
      Array.from({ length: s * (2 * s - 1) }, (_, i) => i),
      [1, s, 2 * s - 1],
    );
    // Row a holds 5a … 5a+4; y[a][b] = x[a][2 − a + b].
    expect(skewToPairs(x).arraySync()).toEqual([
      [
        [2, 3, 4],
        [6, 7, 8],
        [10, 11, 12],
      ],
    ]);
    expect(skewToPairs(tf.tensor3d([[[7]]])).arraySync()).toEqual([[[7]]]);
  });
});

describe("attention mask", () => {
  test("a query and a key attend only when both are real", () => {
    expect([...pairMask([[1, 1, 0]], 1, 3)]).toEqual([1, 1, 0, 1, 1, 0, 0, 0, 0]);
    expect([...pairMask(undefined, 1, 2)]).toEqual([1, 1, 1, 1]);
  });

  test("XSoftmax: softmax over allowed keys, a padded query row is all zeros", () => {
    const keep = tf.tensor3d(pairMask([[1, 1, 0]], 1, 3), [1, 3, 3]);
    const scores = tf.tensor3d([
      [
        [0, Math.log(3), 5],
        [1, 1, 9],
        [2, 3, 4],
      ],
    ]);
    const probs = maskedSoftmax(scores, keep).arraySync() as number[][][];
    [
      [0.25, 0.75, 0],
      [0.5, 0.5, 0],
      [0, 0, 0],
    ].forEach((row, i) => row.forEach((p, j) => expect(probs[0]![i]![j]).toBeCloseTo(p, 6)));
  });
});

/** A random DeBERTa-v2 checkpoint (hidden 8, 2 heads, 1 layer) with the given config overrides. */
async function syntheticDeberta(name: string, overrides: Record<string, unknown>): Promise<string> {
  const config = {
    model_type: "deberta-v2",
    architectures: ["DebertaV2ForSequenceClassification"],
    hidden_size: 8,
    num_attention_heads: 2,
    num_hidden_layers: 1,
    intermediate_size: 12,
    vocab_size: 30,
    max_position_embeddings: 16,
    relative_attention: true,
    position_buckets: 4,
    max_relative_positions: -1,
    pos_att_type: "p2c|c2p",
    norm_rel_ebd: "layer_norm",
    share_att_key: false,
    position_biased_input: true,
    type_vocab_size: 2,
    conv_kernel_size: 3,
    conv_act: "gelu",
    num_labels: 2,
    ...overrides,
  };
  const shapes: Record<string, number[]> = {
    "deberta.embeddings.word_embeddings.weight": [30, 8],
    "deberta.embeddings.position_embeddings.weight": [16, 8],
    "deberta.embeddings.token_type_embeddings.weight": [2, 8],
    "deberta.encoder.rel_embeddings.weight": [8, 8],
    "deberta.encoder.conv.conv.weight": [8, 8, 3],
    "deberta.encoder.conv.conv.bias": [8],
    "pooler.dense.weight": [8, 8],
    "pooler.dense.bias": [8],
    "classifier.weight": [2, 8],
    "classifier.bias": [2],
  };
  for (const [module, out, inn] of [
    ["query_proj", 8, 8],
    ["key_proj", 8, 8],
    ["value_proj", 8, 8],
    ["pos_key_proj", 8, 8],
    ["pos_query_proj", 8, 8],
  ] as const) {
    shapes[`deberta.encoder.layer.0.attention.self.${module}.weight`] = [out, inn];
    shapes[`deberta.encoder.layer.0.attention.self.${module}.bias`] = [out];
  }
  for (const [module, out, inn] of [
    ["attention.output.dense", 8, 8],
    ["intermediate.dense", 12, 8],
    ["output.dense", 8, 12],
  ] as const) {
    shapes[`deberta.encoder.layer.0.${module}.weight`] = [out, inn];
    shapes[`deberta.encoder.layer.0.${module}.bias`] = [out];
  }
  for (const norm of [
    "deberta.embeddings.LayerNorm",
    "deberta.encoder.LayerNorm",
    "deberta.encoder.conv.LayerNorm",
    "deberta.encoder.layer.0.attention.output.LayerNorm",
    "deberta.encoder.layer.0.output.LayerNorm",
  ]) {
    shapes[`${norm}.weight`] = [8];
    shapes[`${norm}.bias`] = [8];
  }
  const rng = new SeededRandom(11);
  const tensors = new Map<string, Tensor>();
  for (const [key, shape] of Object.entries(shapes)) {
    const values = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => (key.includes("LayerNorm.weight") ? 1 : 0) + rng.normal() * 0.3);
    tensors.set(key, float32Tensor(values, shape));
  }
  const dir = path.join(tmp, name);
  mkdirSync(dir);
  writeFileSync(path.join(dir, "config.json"), JSON.stringify(config));
  await writeSafetensors(path.join(dir, "model.safetensors"), tensors, { format: "pt" });
  return dir;
}

describe("DeBERTa-v2 variants", () => {
  test("Conv1d over the sequence: zero-padded ends, taps in PyTorch's order", () => {
    // in 2, out 1, kernel 3: y[i] = bias + Σₜ Σc W[0][c][t]·x[i + t − 1][c].
    const x = tf.tensor3d([
      [
        [1, 10],
        [2, 20],
        [3, 30],
      ],
    ]);
    const w = tf.tensor3d([
      [
        [1, 0, 0],
        [0, 0.1, 0.01],
      ],
    ]); // tap 0 of channel 0 (left neighbour), taps 1 and 2 of channel 1.
    const y = convolveSequence(x, w, tf.tensor1d([0.5])).arraySync() as number[][][];
    // i=0: 0 (pad) + 10·0.1 + 20·0.01; i=1: 1 + 2 + 0.3; i=2: 2 + 3 + 0 (pad).
    [1.2 + 0.5, 3.3 + 0.5, 5 + 0.5].forEach((v, i) => expect(y[0]![i]![0]).toBeCloseTo(v, 5));
  });

  test("conv, pos_key_proj / pos_query_proj, positions and token types: padding changes nothing for the real tokens", async () => {
    const model = await loadModel(await syntheticDeberta("full", {}));
    const padded = run(
      model,
      [
        [1, 5, 7, 9, 0, 0],
        [1, 4, 4, 4, 4, 2],
      ],
      [
        [1, 1, 1, 1, 0, 0],
        [1, 1, 1, 1, 1, 1],
      ],
    );
    const alone = run(model, [[1, 5, 7, 9]]);
    expect(maxAbsDiff(padded.logits.slice(0, 2), alone.logits)).toBeLessThan(1e-5);
    expect(maxAbsDiff(padded.hidden.slice(0, 4 * 8), alone.hidden)).toBeLessThan(1e-5);
    // Padded positions leave the first layer as zeros (the conv layer masks them).
    expect(Math.max(...padded.hidden.slice(4 * 8, 6 * 8).map(Math.abs))).toBe(0);
    // Each of these tensors is used: zeroing it moves the output.
    for (const key of [
      "deberta.encoder.conv.conv.weight",
      "deberta.encoder.layer.0.attention.self.pos_key_proj.weight",
      "deberta.encoder.layer.0.attention.self.pos_query_proj.weight",
      "deberta.embeddings.position_embeddings.weight",
      "deberta.embeddings.token_type_embeddings.weight",
    ]) {
      const original = model.store.set(key, tf.zerosLike(model.store.get(key)))!;
      expect(maxAbsDiff(run(model, [[1, 5, 7, 9]]).hidden, alone.hidden), key).toBeGreaterThan(1e-3);
      model.store.set(key, original)?.dispose();
    }
  });

  test("an even conv_kernel_size or conv_groups > 1 is refused naming the field", async () => {
    await expect(loadModel(await syntheticDeberta("even", { conv_kernel_size: 2 }))).rejects.toThrow(/`conv_kernel_size` 2 is even/);
    await expect(loadModel(await syntheticDeberta("groups", { conv_groups: 2 }))).rejects.toThrow(/`conv_groups` 2 is not supported/);
  });
});

describe("LoRA training on deberta-v2-tiny", () => {
  test("20 seq-cls steps lower the loss; the saved adapter reloads with identical outputs", async () => {
    const model = await loadModel(requireFixture("deberta-v2-tiny"));
    const rng = new SeededRandom(5);
    // Random ids; each class also draws from its own few ids, so there is something to learn.
    const examples = Array.from({ length: 24 }, (_, i) => {
      const label = i % 3;
      const length = 8 + (i % 5);
      const ids = [
        1,
        ...Array.from({ length: length - 2 }, (_, j) => (j % 2 === 0 ? 4 + Math.floor(rng.next() * 500) : 10 + label * 3 + Math.floor(rng.next() * 3))),
        2,
      ];
      return { ids, label };
    });
    const config = createLoraConfig({ task_type: "SEQ_CLS", r: 4, lora_alpha: 8, modules_to_save: ["classifier", "pooler"] });
    const training = createLoraTraining(model, config, { seed: 3 });
    expect([...training.variables.keys()].filter((k) => k.endsWith("lora_A.weight")).sort()).toEqual(
      [0, 1].flatMap((i) => ["query_proj", "value_proj"].map((m) => `base_model.model.deberta.encoder.layer.${i}.attention.self.${m}.lora_A.weight`)),
    );
    const trainer = new Trainer(model, training, examples, {
      task: "seq-cls",
      steps: 20,
      learningRate: 3e-2,
      batchSize: 8,
      seed: 1,
      padTokenId: 0,
      schedule: "constant",
    });
    const before = trainer.evaluate(examples).loss;
    const losses = Array.from({ length: 20 }, () => trainer.trainStep().loss);
    expect(losses.every(Number.isFinite)).toBe(true);
    const after = trainer.evaluate(examples).loss;
    expect(after).toBeLessThan(before * 0.7);
    // Every lora_B started at zero and has moved.
    for (const [key, v] of training.variables)
      if (key.endsWith("lora_B.weight"))
        expect(
          tf.tidy(() => tf.max(tf.abs(v)).dataSync()[0]),
          key,
        ).toBeGreaterThan(0);
    trainer.dispose();
    const ids = [
      [1, 40, 11, 300, 12, 2, 0, 0],
      [1, 17, 17, 16, 90, 77, 18, 2],
    ];
    const mask = [
      [1, 1, 1, 1, 1, 1, 0, 0],
      [1, 1, 1, 1, 1, 1, 1, 1],
    ];
    const trained = run(model, ids, mask);
    const dir = path.join(tmp, "trained-adapter");
    await writeAdapter(dir, training.exportAdapter());
    const fresh = await loadModel(requireFixture("deberta-v2-tiny"));
    const untouched = run(fresh, ids, mask);
    attachAdapter(fresh, await readAdapter(dir));
    const reloaded = run(fresh, ids, mask);
    expect(maxAbsDiff(reloaded.logits, trained.logits)).toBeLessThanOrEqual(1e-6);
    expect(maxAbsDiff(reloaded.hidden, trained.hidden)).toBeLessThanOrEqual(1e-6);
    expect(maxAbsDiff(untouched.hidden, trained.hidden)).toBeGreaterThan(1e-3);
  });
});
