import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { Checkpoint, createLoraConfig, describeModel, float32Tensor, resolveTargets, toFloat32, type LoraConfigInput } from "@lowrank/core";
import { maxAbsDiff, requireFixture } from "@lowrank/core/testing";
import { loadModel, selectEngine } from "@lowrank/backend-tfjs";
import { createFullTraining, createLoraTraining } from "@lowrank/backend-tfjs/internal";
import { batchOf, expectGradients, randomCheckpoint, tfjsClassification } from "./classification-reference.test-util.js";
import { fixtureVariant } from "./fixture-variant.test-util.js";
import { correctRows, runClassificationBatch } from "./classification-batch.js";
import { encoderTraining } from "./encoder-training-graph.js";
import { gradientName, initialFactors, planLoraSlots } from "./lora-plan.js";
import { savedModuleTensors } from "./saved-modules.js";
import { buildTrainingGraph, type TrainedParameter } from "./training-graph.js";
import { openGraphSession } from "./training-session.js";

const tmp = mkdtempSync(path.join(os.tmpdir(), "lowrank-onnx-encoders-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A random BERT for sequence classification (pooler + classifier, 3 labels), LayerNorm weights around 1. */
async function randomBert(): Promise<string> {
  const config = {
    model_type: "bert",
    architectures: ["BertForSequenceClassification"],
    hidden_size: 16,
    num_attention_heads: 4,
    num_hidden_layers: 2,
    intermediate_size: 24,
    vocab_size: 30,
    max_position_embeddings: 20,
    type_vocab_size: 2,
    hidden_act: "gelu",
    pad_token_id: 0,
  };
  const shapes: Record<string, number[]> = {
    "bert.embeddings.word_embeddings.weight": [30, 16],
    "bert.embeddings.position_embeddings.weight": [20, 16],
    "bert.embeddings.token_type_embeddings.weight": [2, 16],
    "bert.embeddings.LayerNorm.weight": [16],
    "bert.embeddings.LayerNorm.bias": [16],
    "bert.pooler.dense.weight": [16, 16],
    "bert.pooler.dense.bias": [16],
    "classifier.weight": [3, 16],
    "classifier.bias": [3],
  };
  const linears: [string, number, number][] = [
    ["attention.self.query", 16, 16],
    ["attention.self.key", 16, 16],
    ["attention.self.value", 16, 16],
    ["attention.output.dense", 16, 16],
    ["intermediate.dense", 24, 16],
    ["output.dense", 16, 24],
  ];
  for (let i = 0; i < 2; i++) {
    const b = `bert.encoder.layer.${i}`;
    for (const [name, out, inn] of linears) Object.assign(shapes, { [`${b}.${name}.weight`]: [out, inn], [`${b}.${name}.bias`]: [out] });
    for (const n of ["attention.output.LayerNorm", "output.LayerNorm"]) Object.assign(shapes, { [`${b}.${n}.weight`]: [16], [`${b}.${n}.bias`]: [16] });
  }
  return randomCheckpoint(path.join(tmp, "bert"), config, shapes);
}

const ROBERTA = { fixture: "roberta-tiny", vocab: 512, pad: 1 };
const LENGTHS = [11, 7, 9, 4];
const CLASSES = [2, 0, 1, 1];

describe("the ONNX encoder classification graph against the tfjs backend (sequence classification, padded rows)", () => {
  test.each([
    ["roberta-tiny: LoRA on query, value; modules_to_save classifier (dense + out_proj)", "roberta", ["query", "value"], ["classifier"]],
    ["a random BERT: LoRA on every block linear; modules_to_save classifier and pooler", "bert", ["query", "key", "value", "dense"], ["classifier", "pooler"]],
    [
      "a random BERT: LoRA on the dense layers (the pooler's too) and the token embedding; modules_to_save classifier",
      "bert",
      ["dense", "word_embeddings"],
      ["classifier"],
    ],
  ])("%s: same start, loss within 1e-5, logits within 1e-5, every gradient within 1e-4 relative", async (_, kind, targets, saved) => {
    await selectEngine();
    const dir = kind === "roberta" ? requireFixture(ROBERTA.fixture) : await randomBert();
    const { vocab, pad } = kind === "roberta" ? ROBERTA : { vocab: 30, pad: 0 };
    const lora: LoraConfigInput = { r: 4, lora_alpha: 8, init_lora_weights: false, lora_dropout: 0, target_modules: targets, modules_to_save: saved };
    const config = createLoraConfig({ ...lora, task_type: "SEQ_CLS" });
    const checkpoint = await Checkpoint.open(dir);
    const info = checkpoint.tensorInfo();
    const modelConfig = checkpoint.config;
    await checkpoint.close();
    const description = describeModel(modelConfig, info);
    const architecture = encoderTraining(String(modelConfig.model_type), modelConfig, dir);
    const { slots, modulesToSave } = planLoraSlots({ config, description, supported: architecture.supports, label: dir });
    expect(slots.map((slot) => slot.module)).toEqual(resolveTargets(config, description).targets.map((t) => t.name));
    expect(modulesToSave).toEqual(saved.includes("pooler") ? ["bert.pooler", "classifier"] : ["classifier"]);
    const trained = { names: savedModuleTensors(modulesToSave, info.keys()), parameters: new Map<string, TrainedParameter>() };
    const factors = initialFactors(slots, config, 7);
    const model = await buildTrainingGraph({ dir, architecture, slots, dropout: false, gradients: true, trained });
    expect(model.graph.input.slice(0, 3).map((i) => i.name)).toEqual(["input_ids", "attention_mask", "labels"]);
    expect(model.graph.output.slice(0, 3).map((o) => o.name)).toEqual(["loss", "tokens", "logits"]);
    expect(
      model.graph.output
        .map((o) => o.name)
        .slice(3)
        .sort(),
    ).toEqual([...factors.keys(), ...trained.names.values()].map(gradientName).sort());
    expect(model.graph.initializer.filter((t) => trained.names.has(t.name) || trained.parameters.has(t.name))).toEqual([]);
    const { session } = await openGraphSession(model, {});
    const { ids, mask } = batchOf(LENGTHS, vocab, pad, 5);
    const values = new Map(factors);
    for (const [key, p] of trained.parameters) values.set(key, p.values);
    let ours;
    let alone;
    try {
      ours = await runClassificationBatch(session, { slots, ids, mask, classes: CLASSES, factors: values, parameters: trained.parameters, gradients: true });
      // The shortest row unpadded: the same logits.
      alone = await runClassificationBatch(session, {
        slots,
        ids: [ids[3]!.slice(0, 4)],
        mask: [mask[3]!.slice(0, 4)],
        classes: [CLASSES[3]!],
        factors: values,
        parameters: trained.parameters,
        gradients: false,
      });
    } finally {
      await session.release();
    }
    const tfjsModel = await loadModel(dir);
    try {
      const tfjsTraining = createLoraTraining(tfjsModel, config, { seed: 7 });
      expect([...tfjsTraining.variables.keys()].sort()).toEqual([...values.keys()].sort());
      for (const [key, variable] of tfjsTraining.variables) expect(maxAbsDiff(variable.dataSync() as Float32Array, values.get(key)!), key).toBe(0);
      const theirs = tfjsClassification(tfjsModel, tfjsTraining, ids, mask, CLASSES);
      expect(Math.abs(theirs.loss - ours.loss)).toBeLessThanOrEqual(1e-5);
      expect(maxAbsDiff(ours.logits, theirs.logits)).toBeLessThanOrEqual(1e-5);
      expect(maxAbsDiff(alone.logits, ours.logits.slice(9, 12))).toBeLessThanOrEqual(1e-5);
      expect(ours.rows).toBe(4);
      expect(ours.correct).toBe(correctRows(theirs.logits, CLASSES));
      const worst = expectGradients(ours.grads, theirs.grads);
      console.log(`${kind}: loss ${ours.loss} (tfjs ${theirs.loss}), worst relative gradient difference ${worst.toExponential(2)}`);
    } finally {
      tfjsModel.store.dispose();
    }
  });

  test("a random BERT with lora_dropout: all-ones masks ([tokens, in], the pooler's read at the first tokens) give the gradients without dropout", async () => {
    const dir = await randomBert();
    const checkpoint = await Checkpoint.open(dir);
    const info = checkpoint.tensorInfo();
    const modelConfig = checkpoint.config;
    await checkpoint.close();
    const config = createLoraConfig({ r: 4, lora_alpha: 8, init_lora_weights: false, lora_dropout: 0.1, target_modules: ["dense"], task_type: "SEQ_CLS" });
    const architecture = encoderTraining("bert", modelConfig, dir);
    const { slots } = planLoraSlots({ config, description: describeModel(modelConfig, info), supported: architecture.supports, label: dir });
    expect(slots.map((slot) => slot.module)).toContain("bert.pooler.dense");
    const factors = initialFactors(slots, config, 3);
    const { ids, mask } = batchOf(LENGTHS, 30, 0, 8);
    const tokens = ids.length * ids[0]!.length;
    const masks = new Map(slots.map((slot) => [slot.module, new Float32Array(tokens * slot.inFeatures).fill(1)]));
    const results = [];
    for (const dropout of [false, true]) {
      const model = await buildTrainingGraph({ dir, architecture, slots, dropout, gradients: true });
      const { session } = await openGraphSession(model, {});
      try {
        results.push(await runClassificationBatch(session, { slots, ids, mask, classes: CLASSES, factors, masks, gradients: true }));
      } finally {
        await session.release();
      }
    }
    const [plain, dropped] = results as [Awaited<ReturnType<typeof runClassificationBatch>>, Awaited<ReturnType<typeof runClassificationBatch>>];
    expect(dropped.loss).toBeCloseTo(plain.loss, 6);
    for (const [key, grad] of plain.grads) expect(maxAbsDiff(dropped.grads.get(key)!, grad), key).toBeLessThanOrEqual(1e-6);
  });

  test.each(["roberta", "bert"])("%s, full fine-tuning: every parameter's gradient within 1e-4 relative of the tfjs backend's", async (kind) => {
    await selectEngine();
    // roberta-tiny's token-type table has one row, which the tfjs backend cannot train (its embedding gradient is a one-hot
    // product, and tf.oneHot needs a depth of 2): a copy with the row twice.
    const dir =
      kind === "roberta"
        ? await fixtureVariant({
            name: ROBERTA.fixture,
            dir: path.join(tmp, "roberta-two-token-types"),
            config: { type_vocab_size: 2 },
            tensor: (name, t) =>
              name.endsWith("token_type_embeddings.weight") ? float32Tensor(Float32Array.from([...toFloat32(t), ...toFloat32(t)]), [2, t.shape[1]!]) : t,
          })
        : await randomBert();
    const { vocab, pad } = kind === "roberta" ? ROBERTA : { vocab: 30, pad: 0 };
    const checkpoint = await Checkpoint.open(dir);
    const names = [...checkpoint.tensorInfo().keys()];
    const modelConfig = checkpoint.config;
    await checkpoint.close();
    const parameters = new Map<string, TrainedParameter>();
    const architecture = encoderTraining(String(modelConfig.model_type), modelConfig, dir);
    const model = await buildTrainingGraph({ dir, architecture, slots: [], dropout: false, gradients: true, full: parameters });
    expect([...parameters.keys()].sort()).toEqual(names.sort());
    expect(model.graph.initializer.filter((t) => parameters.has(t.name))).toEqual([]);
    expect(model.graph.node.every((n) => !n.domain)).toBe(true);
    const { session } = await openGraphSession(model, {});
    const { ids, mask } = batchOf(LENGTHS, vocab, pad, 6);
    let ours;
    try {
      ours = await runClassificationBatch(session, { slots: [], ids, mask, classes: CLASSES, factors: new Map(), parameters, gradients: true });
    } finally {
      await session.release();
    }
    const tfjsModel = await loadModel(dir);
    try {
      const theirs = tfjsClassification(tfjsModel, createFullTraining(tfjsModel), ids, mask, CLASSES);
      expect(Math.abs(theirs.loss - ours.loss)).toBeLessThanOrEqual(1e-5);
      const worst = expectGradients(ours.grads, theirs.grads);
      console.log(`${kind} full: worst relative gradient difference ${worst.toExponential(2)}`);
    } finally {
      tfjsModel.store.dispose();
    }
  });
});
