import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createLoraConfig, memoryLogger, readAdapter, toFloat32, writeAdapter, type LoraConfigInput } from "@lowrank/core";
import { restoreTrainingCheckpoint, saveTrainingCheckpoint, SeededRandom, type TrainerOptions, type TrainingExample } from "@lowrank/core/internal";
import { captureLowrankRejection, maxAbsDiff, requireFixture, sharedDir } from "@lowrank/core/testing";
import { loadModel, selectEngine } from "@lowrank/backend-tfjs";
import { createLoraTraining, Trainer } from "@lowrank/backend-tfjs/internal";
import { createOnnxLoraTraining } from "./create-onnx-lora-training.js";
import { fixtureVariant } from "./fixture-variant.test-util.js";
import { onnxStepper } from "./onnx-stepper.js";
import { OnnxLoraTrainer } from "./onnx-trainer.js";

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "lowrank-onnx-train-"));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const dir = requireFixture("gpt2-tiny");

/** Real text (E2E references) as byte-level ids, which fit the tiny fixtures' 512-token vocabulary. */
function e2eExamples(count: number, seqLen: number): TrainingExample[] {
  const lines = readFileSync(path.join(sharedDir(), "data", "e2e", "valid.txt"), "utf8")
    .split("\n")
    .filter(Boolean);
  return lines.slice(0, count).map((line) => ({ ids: [...Buffer.from(line.split("||")[1] ?? line, "utf8")].slice(0, seqLen) }));
}

const lora: LoraConfigInput = { r: 4, lora_alpha: 8, target_modules: ["c_attn", "c_proj", "c_fc"], lora_dropout: 0 };
const options: TrainerOptions = {
  task: "causal-lm",
  learningRate: 5e-3,
  batchSize: 4,
  seed: 11,
  padTokenId: 0,
  warmupSteps: 2,
  schedule: "linear",
  weightDecay: 0.01,
  maxGradNorm: 1,
  gradientAccumulation: 2,
};

async function onnxRun(steps: number) {
  const training = await createOnnxLoraTraining({ model: dir, lora, seed: 5 });
  const trainer = new OnnxLoraTrainer(training.session, training.slots, training.params, e2eExamples(48, 48), { ...options, steps });
  return { training, trainer };
}

describe("LoRA training on ONNX Runtime", () => {
  test("20 steps give the tfjs trainer's losses within 1e-3 (same adapter, data, seed and batch order)", async () => {
    await selectEngine();
    const model = await loadModel(dir);
    const tfjsTraining = createLoraTraining(model, createLoraConfig({ ...lora, fan_in_fan_out: true, task_type: "CAUSAL_LM" }), { seed: 5 });
    const tfjs = new Trainer(model, tfjsTraining, e2eExamples(48, 48), { ...options, steps: 20 });
    const { training, trainer } = await onnxRun(20);
    try {
      expect(trainer.totalSteps).toBe(tfjs.totalSteps);
      const diffs: number[] = [];
      const losses: number[] = [];
      for (let i = 0; i < 20; i++) {
        const theirs = tfjs.trainStep();
        const ours = await trainer.trainStep();
        expect(ours).toMatchObject({ step: theirs.step, epoch: theirs.epoch, tokens: theirs.tokens, learningRate: theirs.learningRate });
        expect(Math.abs(ours.gradNorm - theirs.gradNorm)).toBeLessThanOrEqual(1e-3 * theirs.gradNorm);
        diffs.push(Math.abs(ours.loss - theirs.loss));
        losses.push(ours.loss);
      }
      expect(Math.max(...diffs)).toBeLessThanOrEqual(1e-3);
      // It learns: the last steps' losses are below the first ones'.
      expect(losses.slice(-4).reduce((a, b) => a + b) / 4).toBeLessThan(losses.slice(0, 4).reduce((a, b) => a + b) / 4);
      const ours = await trainer.evaluate(e2eExamples(16, 48));
      const theirs = tfjs.evaluate(e2eExamples(16, 48));
      expect(Math.abs(ours.loss - theirs.loss)).toBeLessThanOrEqual(1e-3);
      expect(ours.perplexity).toBeCloseTo(Math.exp(ours.loss), 6);
    } finally {
      tfjs.dispose();
      model.store.dispose();
      await training.release();
    }
  });

  test("resuming from a mid-run checkpoint gives the same next losses; the checkpoint is a PEFT adapter", async () => {
    const straight = await onnxRun(8);
    const full: number[] = [];
    for (let i = 0; i < 8; i++) full.push((await straight.trainer.trainStep()).loss);
    await straight.training.release();

    const first = await onnxRun(8);
    const log = [];
    for (let i = 0; i < 4; i++) log.push(await first.trainer.trainStep());
    const checkpoint = path.join(tmp, "checkpoint-4");
    await saveTrainingCheckpoint(checkpoint, onnxStepper(first.training, first.trainer), { seed: 11, log, baseDir: dir });
    await first.training.release();
    const saved = await readAdapter(checkpoint);
    expect(saved.tensors.get("base_model.model.transformer.h.1.mlp.c_fc.lora_B.weight")!.shape).toEqual([256, 4]);

    const resumed = await onnxRun(8);
    expect((await restoreTrainingCheckpoint(checkpoint, onnxStepper(resumed.training, resumed.trainer))).map((l) => l.loss)).toEqual(full.slice(0, 4));
    for (let i = 4; i < 8; i++) expect((await resumed.trainer.trainStep()).loss).toBeCloseTo(full[i]!, 6);
    await resumed.training.release();
  });

  test("lora_dropout > 0 trains with seeded masks: same seed, same losses", async () => {
    const run = async () => {
      const training = await createOnnxLoraTraining({ model: dir, lora: { ...lora, lora_dropout: 0.1 }, seed: 5 });
      const trainer = new OnnxLoraTrainer(
        training.session,
        training.slots,
        training.params,
        e2eExamples(16, 32),
        { ...options, steps: 3 },
        { dropout: training.config.lora_dropout },
      );
      const losses = [];
      for (let i = 0; i < 3; i++) losses.push((await trainer.trainStep()).loss);
      await training.release();
      return losses;
    };
    const [a, b] = [await run(), await run()];
    expect(a).toEqual(b);
    expect(a.every(Number.isFinite)).toBe(true);
  });

  test("the session goes through the CUDA → CPU fallback: asked for CUDA here, it reports the CPU and why", async () => {
    const logger = memoryLogger();
    const training = await createOnnxLoraTraining({ model: dir, lora, seed: 5, executionProvider: "cuda", logger });
    try {
      expect(training.provider).toBe("cpu");
      expect(training.reason).toMatch(/^CUDA unavailable \(.+\)$/);
      expect(logger.warnings.some((m) => /CUDA unavailable .*using the CPU/.test(m))).toBe(true);
    } finally {
      await training.release();
    }
    const cpu = await createOnnxLoraTraining({ model: dir, lora, seed: 5 });
    expect([cpu.provider, cpu.reason]).toEqual(["cpu", "requested"]);
    await cpu.release();
  });

  test("what the ONNX trainer cannot train is refused in one line naming it", async () => {
    const quickGelu = await fixtureVariant({ name: "gemma2-tiny", dir: path.join(tmp, "gemma2-quick"), config: { hidden_activation: "quick_gelu" } });
    const longrope = await fixtureVariant({ name: "phi3-tiny", dir: path.join(tmp, "phi3-su"), config: { rope_scaling: { type: "su" } } });
    const conv = await fixtureVariant({
      name: "deberta-v2-tiny",
      dir: path.join(tmp, "deberta-conv"),
      config: { conv_kernel_size: 3, conv_act: "quick_gelu" },
    });
    for (const [model, input, message] of [
      [quickGelu, lora, /gemma2-quick: config\.json `hidden_activation` "quick_gelu" is not supported by the onnx trainer \(supported: gelu_new, .*\)$/],
      [longrope, lora, /phi3-su\/config\.json: Phi-3 `rope_scaling` type "su" is not supported by lowrank/],
      [
        conv,
        { ...lora, target_modules: ["query_proj"] },
        /deberta-conv: config.json `conv_act` "quick_gelu" is not supported by the onnx trainer \(supported: gelu_new, .*\)$/,
      ],
      [
        requireFixture("deberta-v2-tiny"),
        { ...lora, target_modules: ["rel_embeddings"] },
        /deberta-v2-tiny: the onnx trainer does not support LoRA on `deberta.encoder.rel_embeddings` \(target_modules\) yet/,
      ],
      [
        dir,
        { ...lora, use_dora: true, target_modules: ["wte"] },
        /`use_dora` is true but "transformer.wte" is an embedding; PEFT does not support DoRA on embeddings/,
      ],
      [dir, { ...lora, target_modules: ["wpe"] }, /gpt2-tiny: the onnx trainer does not support LoRA on `transformer.wpe` \(target_modules\) yet/],
      [dir, { ...lora, init_lora_weights: "loftq" }, /gpt2-tiny: the onnx trainer does not support `init_lora_weights` "loftq" yet/],
      [requireFixture("gpt2-tiny", "model.onnx"), lora, /not an ONNX file/],
    ] as const) {
      const error = await captureLowrankRejection(createOnnxLoraTraining({ model, lora: input as LoraConfigInput, seed: 1 }));
      expect(error.message).toMatch(message);
      expect(error.message).not.toContain("\n");
    }
  });
});

/** Classification examples for the tiny encoders: bos, 2–10 random ids, eos; the label is the first id's residue mod 3 (learnable). */
function classificationExamples(count: number, seed: number, bos = 0): TrainingExample[] {
  const rng = new SeededRandom(seed);
  return Array.from({ length: count }, () => {
    const inner = Array.from({ length: 2 + Math.floor(rng.next() * 9) }, () => 3 + Math.floor(rng.next() * 509));
    return { ids: [bos, ...inner, 2], label: inner[0]! % 3 };
  });
}

describe("sequence classification on ONNX Runtime (roberta-tiny, deberta-v2-tiny)", () => {
  const roberta = requireFixture("roberta-tiny");
  const clsLora: LoraConfigInput = { r: 4, lora_alpha: 8, target_modules: ["query", "value"], lora_dropout: 0 };
  const clsOptions: TrainerOptions = { ...options, task: "seq-cls", padTokenId: 1, learningRate: 1e-2, steps: 20 };
  const cases = [
    {
      name: "roberta-tiny",
      what: "LoRA on query, value + the classifier",
      lora: clsLora,
      bos: 0,
      padTokenId: 1,
      saved: { "base_model.model.classifier.out_proj.weight": [3, 64], "base_model.model.classifier.dense.bias": [64] },
    },
    {
      name: "deberta-v2-tiny",
      // PEFT's default targets for deberta-v2: query_proj and value_proj (query_proj also projects the position table).
      what: "LoRA on PEFT's default targets + the classifier",
      lora: { r: 4, lora_alpha: 8, lora_dropout: 0 },
      bos: 1,
      padTokenId: 0,
      saved: {
        "base_model.model.classifier.weight": [3, 64],
        "base_model.model.deberta.encoder.layer.1.attention.self.query_proj.lora_A.weight": [4, 64],
        "base_model.model.deberta.encoder.layer.1.attention.self.value_proj.lora_B.weight": [64, 4],
      },
    },
  ];

  test.each(cases)("$name: 20 steps ($what) give the tfjs trainer's losses within 1e-3, the same accuracy and adapter", async (c) => {
    await selectEngine();
    const dir = requireFixture(c.name);
    const train = classificationExamples(48, 3, c.bos);
    const evalSet = classificationExamples(20, 4, c.bos);
    const opts = { ...clsOptions, padTokenId: c.padTokenId };
    const training = await createOnnxLoraTraining({ model: dir, lora: c.lora, seed: 5 });
    expect(training.task).toBe("seq-cls");
    expect(training.config).toMatchObject({ task_type: "SEQ_CLS", modules_to_save: ["classifier", "score"] });
    const model = await loadModel(dir);
    const tfjsTraining = createLoraTraining(
      model,
      createLoraConfig({ ...c.lora, task_type: "SEQ_CLS", modules_to_save: ["classifier", "score"], base_model_name_or_path: dir }),
      { seed: 5 },
    );
    const tfjs = new Trainer(model, tfjsTraining, train, opts);
    const trainer = new OnnxLoraTrainer(training.session, training.slots, training.params, train, opts, {
      parameters: training.parameters,
      numLabels: 3,
    });
    try {
      const diffs: number[] = [];
      for (let i = 0; i < 20; i++) {
        const theirs = tfjs.trainStep();
        const ours = await trainer.trainStep();
        expect(ours).toMatchObject({ step: theirs.step, epoch: theirs.epoch, tokens: theirs.tokens, learningRate: theirs.learningRate });
        diffs.push(Math.abs(ours.loss - theirs.loss));
      }
      const [ours, theirs] = [await trainer.evaluate(evalSet), tfjs.evaluate(evalSet)];
      console.log(
        `${c.name} seq-cls: worst loss difference ${Math.max(...diffs).toExponential(2)} over 20 steps; eval loss ${ours.loss} (tfjs ${theirs.loss}), ` +
          `accuracy ${ours.accuracy} (tfjs ${theirs.accuracy})`,
      );
      expect(Math.max(...diffs)).toBeLessThanOrEqual(1e-3);
      expect(Math.abs(ours.loss - theirs.loss)).toBeLessThanOrEqual(1e-3);
      expect(ours.accuracy).toBe(theirs.accuracy);
      expect(ours.examples).toBe(20);
      const folder = (who: string) => path.join(tmp, `seq-cls-${c.name}-${who}`);
      await writeAdapter(folder("onnx"), training.adapter());
      await writeAdapter(folder("tfjs"), tfjsTraining.exportAdapter());
      const [a, b] = [await readAdapter(folder("onnx")), await readAdapter(folder("tfjs"))];
      const shapes = (x: typeof a) => Object.fromEntries([...x.tensors].map(([k, t]) => [k, t.shape]));
      expect(shapes(a)).toEqual(shapes(b));
      expect(shapes(a)).toMatchObject(c.saved);
      expect(a.config).toEqual(b.config);
      for (const [key, t] of b.tensors) {
        const want = toFloat32(t);
        const scale = want.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        expect(maxAbsDiff(toFloat32(a.tensors.get(key)!), want), key).toBeLessThanOrEqual(1e-3 * scale);
      }
    } finally {
      tfjs.dispose();
      model.store.dispose();
      await training.release();
    }
  });

  test("a label the classifier lacks is one USAGE error naming it; causal LM on an encoder is refused", async () => {
    const training = await createOnnxLoraTraining({ model: roberta, lora: clsLora, seed: 5 });
    try {
      const examples = [...classificationExamples(4, 3), { ids: [0, 5, 2], label: 3 }];
      const error = await captureLowrankRejection(
        (async () => new OnnxLoraTrainer(training.session, training.slots, training.params, examples, clsOptions, { numLabels: 3 }))(),
      );
      expect(error.code).toBe("USAGE");
      expect(error.message).toMatch(/^training example 5: `label` 3 is out of range: the model classifies into 3 labels \(0 to 2/);
    } finally {
      await training.release();
    }
    const error = await captureLowrankRejection(createOnnxLoraTraining({ model: roberta, lora: clsLora, task: "causal-lm", seed: 5 }));
    expect(error.message).toMatch(/--task causal-lm does not fit .*roberta-tiny, a roberta sequence classifier/);
  });
});
