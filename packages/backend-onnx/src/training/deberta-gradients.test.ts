import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { Checkpoint, resolveTargets, describeModel, type LoraConfigInput } from "@lowrank/core";
import { maxAbsDiff, requireFixture } from "@lowrank/core/testing";
import { loadModel, selectEngine } from "@lowrank/backend-tfjs";
import { createFullTraining, createLoraTraining } from "@lowrank/backend-tfjs/internal";
import { OnnxBackend } from "../onnx-backend.js";
import { correctRows, runClassificationBatch } from "./classification-batch.js";
import { batchOf, expectGradients, randomCheckpoint, tfjsClassification } from "./classification-reference.test-util.js";
import { createOnnxFullTraining } from "./create-onnx-full-training.js";
import { createOnnxLoraTraining, planOnnxLoraTraining } from "./create-onnx-lora-training.js";
import { dropoutMaskName, maskRows } from "./lora-plan.js";

const tmp = mkdtempSync(path.join(os.tmpdir(), "lowrank-onnx-deberta-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const TINY = requireFixture("deberta-v2-tiny");
const LENGTHS = [11, 7, 9, 4];
const CLASSES = [2, 0, 1, 1];

/**
 * A random DeBERTa-v2 classifier covering what deberta-v2-tiny does not: its own pos_key_proj /
 * pos_query_proj (share_att_key false), log buckets over a table with more rows than used and no
 * LayerNorm, absolute positions and two token types in the input, embed_proj (embedding_size 12 <
 * hidden 16), gelu_new in the blocks and exact GELU in the pooler.
 */
async function randomDeberta(overrides: Record<string, unknown> = {}): Promise<string> {
  const config = {
    model_type: "deberta-v2",
    architectures: ["DebertaV2ForSequenceClassification"],
    hidden_size: 16,
    embedding_size: 12,
    num_attention_heads: 2,
    num_hidden_layers: 2,
    intermediate_size: 24,
    vocab_size: 30,
    max_position_embeddings: 20,
    relative_attention: true,
    pos_att_type: "p2c|c2p",
    share_att_key: false,
    position_buckets: 4,
    max_relative_positions: 12,
    norm_rel_ebd: "none",
    position_biased_input: true,
    type_vocab_size: 2,
    hidden_act: "gelu_new",
    pooler_hidden_act: "gelu",
    pad_token_id: 0,
    id2label: { 0: "a", 1: "b", 2: "c" },
    ...overrides,
  };
  const shapes: Record<string, number[]> = {
    "deberta.embeddings.word_embeddings.weight": [30, 12],
    "deberta.embeddings.position_embeddings.weight": [20, 12],
    "deberta.embeddings.token_type_embeddings.weight": [2, 12],
    "deberta.embeddings.embed_proj.weight": [16, 12],
    "deberta.embeddings.LayerNorm.weight": [16],
    "deberta.embeddings.LayerNorm.bias": [16],
    "deberta.encoder.rel_embeddings.weight": [12, 16],
    "pooler.dense.weight": [16, 16],
    "pooler.dense.bias": [16],
    "classifier.weight": [3, 16],
    "classifier.bias": [3],
    ...(config.norm_rel_ebd === "layer_norm" ? { "deberta.encoder.LayerNorm.weight": [16], "deberta.encoder.LayerNorm.bias": [16] } : {}),
    ...(typeof overrides.conv_kernel_size === "number"
      ? {
          "deberta.encoder.conv.conv.weight": [16, 16, overrides.conv_kernel_size],
          "deberta.encoder.conv.conv.bias": [16],
          "deberta.encoder.conv.LayerNorm.weight": [16],
          "deberta.encoder.conv.LayerNorm.bias": [16],
        }
      : {}),
  };
  const linears: [string, number, number][] = [
    ...["query_proj", "key_proj", "value_proj", "pos_key_proj", "pos_query_proj"].map((p): [string, number, number] => [`attention.self.${p}`, 16, 16]),
    ["attention.output.dense", 16, 16],
    ["intermediate.dense", 24, 16],
    ["output.dense", 16, 24],
  ];
  for (let i = 0; i < 2; i++) {
    const b = `deberta.encoder.layer.${i}`;
    for (const [name, out, inn] of linears) Object.assign(shapes, { [`${b}.${name}.weight`]: [out, inn], [`${b}.${name}.bias`]: [out] });
    for (const n of ["attention.output.LayerNorm", "output.LayerNorm"]) Object.assign(shapes, { [`${b}.${n}.weight`]: [16], [`${b}.${n}.bias`]: [16] });
  }
  return randomCheckpoint(path.join(tmp, `deberta-${JSON.stringify(overrides).replace(/\W+/g, "-")}`), config, shapes);
}

/** The batch of a checkpoint: padded rows of LENGTHS over its vocabulary (padding at pad_token_id 0). */
const batchFor = (dir: string, seed: number) => batchOf(LENGTHS, dir === TINY ? 512 : 30, 0, seed);

describe("the ONNX DeBERTa-v2 classification graph against the tfjs backend (padded rows)", () => {
  test.each([
    ["deberta-v2-tiny: PEFT's default targets (query_proj, value_proj), classifier saved", "tiny", {}],
    [
      "deberta-v2-tiny: LoRA on every block linear and the word embedding; classifier and pooler saved (the PEFT fixture's modules_to_save)",
      "tiny",
      { target_modules: ["query_proj", "key_proj", "value_proj", "dense", "word_embeddings"], modules_to_save: ["classifier", "pooler"] },
    ],
    [
      "deberta-v2-tiny: DoRA on query_proj and key_proj (also over the position table), lora_only biases",
      "tiny",
      {
        target_modules: ["query_proj", "key_proj"],
        use_dora: true,
        bias: "lora_only",
      },
    ],
    [
      "a random DeBERTa (own pos_*_proj, positions, token types, embed_proj): LoRA on every supported linear",
      {},
      { target_modules: ["query_proj", "key_proj", "value_proj", "dense", "embed_proj", "classifier"], modules_to_save: [] },
    ],
    [
      "a random DeBERTa: LoRA on its own pos_query_proj / pos_key_proj, which project the position table alone",
      {},
      { target_modules: ["pos_query_proj", "pos_key_proj", "value_proj"] },
    ],
    [
      // Not on pos_key_proj: a bias on every key of c2p shifts each query's scores by one constant, which softmax cancels (a zero gradient).
      "a random DeBERTa: lora_bias on pos_query_proj, value_proj and the dense layers",
      {},
      { target_modules: ["pos_query_proj", "value_proj", "dense"], lora_bias: true },
    ],
    [
      "a random DeBERTa with c2p only through its shared key_proj, a LayerNorm'd table: LoRA on query_proj, key_proj",
      { pos_att_type: ["c2p"], share_att_key: true, norm_rel_ebd: "layer_norm" },
      { target_modules: ["query_proj", "key_proj"] },
    ],
    [
      'a random DeBERTa-v2 with the convolution layer (kernel 3, tanh) after the first layer: LoRA on query_proj and dense, bias "all" (the conv\'s too)',
      { conv_kernel_size: 3, conv_act: "tanh" },
      { target_modules: ["query_proj", "dense"], bias: "all" },
    ],
    [
      "a random DeBERTa-v2 with a kernel-5 relu convolution: LoRA on value_proj, the conv layer saved whole (modules_to_save)",
      { conv_kernel_size: 5, conv_act: "relu" },
      { target_modules: ["value_proj"], modules_to_save: ["classifier", "encoder.conv"] },
    ],
    [
      "a random DeBERTa without relative attention (the scale still counts both terms): LoRA on value_proj",
      { relative_attention: false },
      {
        target_modules: ["value_proj"],
      },
    ],
  ] as [string, "tiny" | Record<string, unknown>, LoraConfigInput][])(
    "%s: loss and logits within 1e-5, every gradient within 1e-4 relative",
    async (_, kind, input) => {
      await selectEngine();
      const dir = kind === "tiny" ? TINY : await randomDeberta(kind);
      const lora: LoraConfigInput = { r: 4, lora_alpha: 8, init_lora_weights: false, lora_dropout: 0, ...input };
      const training = await createOnnxLoraTraining({ model: dir, lora, seed: 7 });
      const { ids, mask } = batchFor(dir, 5);
      let ours;
      let alone;
      try {
        expect(training.task).toBe("seq-cls");
        const checkpoint = await Checkpoint.open(dir);
        const description = describeModel(checkpoint.config, checkpoint.tensorInfo());
        await checkpoint.close();
        expect(training.slots.map((s) => s.module)).toEqual(resolveTargets(training.config, description).targets.map((t) => t.name));
        const feeds = { slots: training.slots, factors: training.params, parameters: training.parameters };
        ours = await runClassificationBatch(training.session, { ...feeds, ids, mask, classes: CLASSES, gradients: true });
        // The shortest row unpadded: the same logits.
        alone = await runClassificationBatch(training.session, {
          ...feeds,
          ids: [ids[3]!.slice(0, 4)],
          mask: [mask[3]!.slice(0, 4)],
          classes: [1],
          gradients: false,
        });
      } finally {
        await training.release();
      }
      const model = await loadModel(dir);
      try {
        const tfjsTraining = createLoraTraining(model, training.config, { seed: 7 });
        expect([...tfjsTraining.variables.keys()].sort()).toEqual([...training.params.keys()].sort());
        const theirs = tfjsClassification(model, tfjsTraining, ids, mask, CLASSES);
        expect(Math.abs(theirs.loss - ours.loss)).toBeLessThanOrEqual(1e-5);
        expect(maxAbsDiff(ours.logits, theirs.logits)).toBeLessThanOrEqual(1e-5);
        expect(maxAbsDiff(alone.logits, ours.logits.slice(9, 12))).toBeLessThanOrEqual(1e-5);
        expect(ours.correct).toBe(correctRows(theirs.logits, CLASSES));
        const worst = expectGradients(ours.grads, theirs.grads);
        const label = `${dir === TINY ? "tiny" : `random ${JSON.stringify(kind)}`} ${JSON.stringify(input)}`;
        console.log(`${label}: loss ${ours.loss} (tfjs ${theirs.loss}), worst relative gradient difference ${worst.toExponential(2)}`);
      } finally {
        model.store.dispose();
      }
    },
  );

  test.each(["tiny", "random", "random with the convolution layer"])(
    "%s, full fine-tuning: every parameter's gradient (the position table's too) within 1e-4 relative of tfjs's",
    async (kind) => {
      await selectEngine();
      const dir = kind === "tiny" ? TINY : await randomDeberta(kind === "random" ? {} : { conv_kernel_size: 3, conv_act: "gelu" });
      const checkpoint = await Checkpoint.open(dir);
      const names = [...checkpoint.tensorInfo().keys()];
      await checkpoint.close();
      const full = await createOnnxFullTraining({ model: dir });
      const { ids, mask } = batchFor(dir, 6);
      let ours;
      try {
        expect([...full.parameters.keys()].sort()).toEqual(names.sort());
        ours = await runClassificationBatch(full.session, {
          slots: [],
          ids,
          mask,
          classes: CLASSES,
          factors: new Map(),
          parameters: full.parameters,
          gradients: true,
        });
      } finally {
        await full.release();
      }
      const model = await loadModel(dir);
      try {
        const theirs = tfjsClassification(model, createFullTraining(model), ids, mask, CLASSES);
        expect(Math.abs(theirs.loss - ours.loss)).toBeLessThanOrEqual(1e-5);
        const worst = expectGradients(ours.grads, theirs.grads);
        console.log(`${kind} full: worst relative gradient difference ${worst.toExponential(2)}`);
      } finally {
        model.store.dispose();
      }
    },
  );

  test("lora_dropout: query_proj's mask covers the tokens and the table rows it projects; all-ones masks give the gradients without dropout", async () => {
    const lora: LoraConfigInput = { r: 4, lora_alpha: 8, init_lora_weights: false, target_modules: ["query_proj", "key_proj", "value_proj"] };
    const { ids, mask } = batchFor(TINY, 8);
    const tokens = ids.length * ids[0]!.length;
    const run = async (dropout: number, masksOf?: (rows: number, inFeatures: number, extra: number) => Float32Array) => {
      const training = await createOnnxLoraTraining({ model: TINY, lora: { ...lora, lora_dropout: dropout }, seed: 3 });
      try {
        // The tiny model's table has 2 · position_buckets = 64 rows; query_proj (p2c) and key_proj (c2p) project it, value_proj does not.
        const extra = Object.fromEntries(training.slots.map((s) => [s.module.replace(/^.*\./, ""), s.extraRows ?? 0]));
        expect(extra).toEqual({ query_proj: 64, key_proj: 64, value_proj: 0 });
        const masks = masksOf && new Map(training.slots.map((s) => [s.module, masksOf(tokens, s.inFeatures, s.extraRows ?? 0)]));
        if (masks) expect(training.session.inputNames).toContain(dropoutMaskName(training.slots[0]!.module));
        const feeds = { slots: training.slots, factors: training.params, parameters: training.parameters, masks };
        return await runClassificationBatch(training.session, { ...feeds, ids, mask, classes: CLASSES, gradients: true });
      } finally {
        await training.release();
      }
    };
    const plain = await run(0);
    const ones = await run(0.1, (rows, width, extra) => new Float32Array((rows + extra) * width).fill(1));
    expect(ones.loss).toBeCloseTo(plain.loss, 6);
    for (const [key, grad] of plain.grads) expect(maxAbsDiff(ones.grads.get(key)!, grad), key).toBeLessThanOrEqual(1e-6);
    // Dropping the table's rows of the masks (1 on the tokens) changes query_proj's gradients: the table's projection goes through the dropped input.
    const tokensOnly = await run(0.1, (rows, width, extra) => Float32Array.from({ length: (rows + extra) * width }, (_, i) => (i < rows * width ? 1 : 0)));
    const key = "base_model.model.deberta.encoder.layer.0.attention.self.query_proj.lora_A.weight";
    expect(maxAbsDiff(tokensOnly.grads.get(key)!, plain.grads.get(key)!)).toBeGreaterThan(1e-6);
  });

  test("lora_dropout on pos_query_proj / pos_key_proj: masks over the table's rows alone; all-ones masks give the gradients without dropout", async () => {
    const dir = await randomDeberta({});
    const lora: LoraConfigInput = { r: 2, lora_alpha: 4, init_lora_weights: false, target_modules: ["pos_query_proj", "pos_key_proj"] };
    const { ids, mask } = batchFor(dir, 4);
    const run = async (dropout: number) => {
      const training = await createOnnxLoraTraining({ model: dir, lora: { ...lora, lora_dropout: dropout }, seed: 3 });
      try {
        const rows = training.slots[0]!.extraRows!;
        for (const s of training.slots) expect([s.extraRows, s.tokens, maskRows(s, 1000)]).toEqual([rows, false, rows]);
        const masks = dropout > 0 ? new Map(training.slots.map((s) => [s.module, new Float32Array(rows * s.inFeatures).fill(1)])) : undefined;
        const feeds = { slots: training.slots, factors: training.params, parameters: training.parameters, masks };
        return await runClassificationBatch(training.session, { ...feeds, ids, mask, classes: CLASSES, gradients: true });
      } finally {
        await training.release();
      }
    };
    const plain = await run(0);
    const ones = await run(0.1);
    expect(ones.loss).toBeCloseTo(plain.loss, 6);
    // A and B of 2 modules in 2 layers, and the classifier's weight and bias (modules_to_save).
    expect(plain.grads.size).toBe(10);
    for (const [key, grad] of plain.grads) expect(maxAbsDiff(ones.grads.get(key)!, grad), key).toBeLessThanOrEqual(1e-6);
  });
});

describe("planning DeBERTa-v2 sequence classification on ONNX Runtime", () => {
  test("planOnnxLoraTraining takes it (query_proj / value_proj, classifier saved), and the backend does not decline it", async () => {
    const plan = await planOnnxLoraTraining({ model: TINY, lora: { r: 4 } });
    expect(plan.task).toBe("seq-cls");
    expect(plan.slots.map((s) => s.module)).toEqual(
      [0, 1].flatMap((i) => ["query_proj", "value_proj"].map((m) => `deberta.encoder.layer.${i}.attention.self.${m}`)),
    );
    expect([...plan.trained.values()].sort()).toEqual(["base_model.model.classifier.bias", "base_model.model.classifier.weight"]);
    const backend = new OnnxBackend();
    for (const train of [{ lora: { r: 4 } }, { full: true }, { task: "seq-cls" as const, lora: { modules_to_save: ["classifier", "pooler"] } }])
      expect(await backend.declineReason({ capability: "train", train: { model: TINY, data: "unused", out: "unused", ...train } })).toBeUndefined();
  });
});
