import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createLoraConfig, readAdapter, toFloat32, writeAdapter, type LoraConfigInput } from "@lowrank/core";
import { restoreTrainingCheckpoint, saveTrainingCheckpoint, SeededRandom, type TrainerOptions } from "@lowrank/core/internal";
import { maxAbsDiff, requireFixture } from "@lowrank/core/testing";
import { loadModel, selectEngine } from "@lowrank/backend-tfjs";
import { createLoraTraining, Trainer } from "@lowrank/backend-tfjs/internal";
import { createOnnxLoraTraining } from "./create-onnx-lora-training.js";
import { onnxStepper } from "./onnx-stepper.js";
import { OnnxLoraTrainer } from "./onnx-trainer.js";
import { tfjsLossAndGradients } from "./tfjs-gradients.test-util.js";
import { runBatch } from "./training-session.js";

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "lowrank-onnx-variants-"));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const GPT2 = ["c_attn", "c_fc"];
const LLAMA = ["q_proj", "v_proj", "o_proj", "down_proj"];
const base = (modules: string[], extra: LoraConfigInput): LoraConfigInput => ({
  r: 4,
  lora_alpha: 8,
  lora_dropout: 0,
  init_lora_weights: false,
  target_modules: modules,
  ...extra,
});

// The PEFT variants the ONNX trainer implements beside plain LoRA, with the parameters tfjs trains for each.
const CASES: [string, string, LoraConfigInput][] = [
  ['bias "all" (every linear and LayerNorm bias)', "gpt2-tiny", base(GPT2, { bias: "all" })],
  ['bias "lora_only" (the adapted modules\' biases)', "gpt2-tiny", base(GPT2, { bias: "lora_only" })],
  ["lora_bias (lora_B.bias, scaled with the product) on Conv1D weights", "gpt2-tiny", base(GPT2, { lora_bias: true, use_rslora: true })],
  ['lora_bias on nn.Linear weights beside an embedding\'s LoRA, bias "all"', "llama-tiny", base([...LLAMA, "embed_tokens"], { lora_bias: true, bias: "all" })],
  ["PiSSA on Conv1D weights", "gpt2-tiny", base(GPT2, { init_lora_weights: "pissa" })],
  [
    "pissa_niter_4 with rsLoRA and a rank pattern",
    "llama-tiny",
    base(LLAMA, { init_lora_weights: "pissa_niter_4", use_rslora: true, rank_pattern: { down_proj: 2 } }),
  ],
  ["OLoRA on Conv1D weights", "gpt2-tiny", base(GPT2, { init_lora_weights: "olora" })],
  ["OLoRA on nn.Linear weights", "llama-tiny", base(LLAMA, { init_lora_weights: "olora" })],
  ["LoRA on the token embedding wte (the tied head stays the base table, as in PEFT)", "gpt2-tiny", base(["wte", "c_attn"], {})],
  ["LoRA on embed_tokens", "llama-tiny", base(["embed_tokens", "q_proj"], {})],
  ["LoRA on GPT-2's lm_head (the tied output head only; the table stays the base)", "gpt2-tiny", base(["lm_head", "c_attn"], {})],
  ["LoRA on lm_head with rsLoRA beside LoRA on embed_tokens", "llama-tiny", base(["lm_head", "embed_tokens", "v_proj"], { use_rslora: true })],
  ["LoRA on Gemma-2's lm_head, under the final-logit soft cap", "gemma2-tiny", base(["lm_head", "q_proj"], {})],
  ['LoRA on Gemma\'s scaled embed_tokens, with bias "all" and no bias in the model', "gemma-tiny", base(["embed_tokens", "down_proj"], { bias: "all" })],
  ["DoRA on Conv1D weights with biases (lora_only trained too)", "gpt2-tiny", base([...GPT2, "attn.c_proj"], { use_dora: true, bias: "lora_only" })],
  ["DoRA on nn.Linear weights, rsLoRA and an alpha pattern", "llama-tiny", base(LLAMA, { use_dora: true, use_rslora: true, alpha_pattern: { o_proj: 2 } })],
  ["DoRA on Phi-3's fused projections", "phi3-tiny", base(["qkv_proj", "gate_up_proj"], { use_dora: true })],
  ["DoRA from OLoRA's start", "llama-tiny", base(["q_proj", "up_proj"], { use_dora: true, init_lora_weights: "olora" })],
  ["modules_to_save: the final LayerNorm ln_f", "gpt2-tiny", base(GPT2, { modules_to_save: ["ln_f"] })],
  ["modules_to_save: the position table wpe", "gpt2-tiny", base(["c_attn"], { modules_to_save: ["wpe"] })],
  ["modules_to_save: the (untied) lm_head and the final norm", "llama-tiny", base(LLAMA, { modules_to_save: ["lm_head", "model.norm"] })],
  ["modules_to_save: embed_tokens (untied from lm_head)", "llama-tiny", base(["q_proj"], { modules_to_save: ["embed_tokens"] })],
];

const rng = new SeededRandom(31);
const lengths = [11, 7, 10];
const ids = lengths.map((n) => Array.from({ length: 11 }, (_, t) => (t < n ? Math.floor(rng.next() * 512) : 0)));
// Repeated tokens, within a row and across rows: an embedding's LoRA gradient must sum them.
ids[0]![5] = ids[0]![2]!;
ids[1]![3] = ids[0]![1]!;
const labels = ids.map((row, b) => row.map((id, t) => (t < lengths[b]! ? id : -100)));

const fanInFanOut = (fixture: string) => fixture.startsWith("gpt2");

describe("PEFT's adapter variants on the ONNX trainer, against the tfjs backend", () => {
  test.each(CASES)("%s (%s): same trained parameters and start, the loss within 1e-5, every gradient within 1e-4 relative", async (_, fixture, lora) => {
    await selectEngine();
    const dir = requireFixture(fixture);
    const training = await createOnnxLoraTraining({ model: dir, lora, seed: 3 });
    const onnx = await runBatch(training.session, {
      slots: training.slots,
      ids,
      labels,
      factors: training.params,
      parameters: training.parameters,
      gradients: true,
    });
    await training.release();
    const model = await loadModel(dir);
    const tfjsTraining = createLoraTraining(model, createLoraConfig({ ...lora, fan_in_fan_out: fanInFanOut(fixture), task_type: "CAUSAL_LM" }), { seed: 3 });
    try {
      expect([...training.params.keys()].sort()).toEqual([...tfjsTraining.variables.keys()].sort());
      if (lora.bias && fixture === "gpt2-tiny") expect(training.parameters.size).toBeGreaterThan(0);
      for (const [key, variable] of tfjsTraining.variables) expect(maxAbsDiff(variable.dataSync() as Float32Array, training.params.get(key)!), key).toBe(0);
      const theirs = tfjsLossAndGradients(model, tfjsTraining, ids, labels);
      expect(Math.abs(theirs.loss - onnx.loss)).toBeLessThanOrEqual(1e-5);
      expect([...onnx.grads.keys()].sort()).toEqual([...theirs.grads.keys()].sort());
      for (const [key, grad] of theirs.grads) {
        const scale = grad.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        expect(scale, key).toBeGreaterThan(0);
        expect(maxAbsDiff(onnx.grads.get(key)!, grad), key).toBeLessThanOrEqual(1e-4 * scale);
      }
    } finally {
      model.store.dispose();
    }
  });

  const options: TrainerOptions = {
    task: "causal-lm",
    learningRate: 3e-3,
    batchSize: 4,
    seed: 2,
    padTokenId: 0,
    warmupSteps: 2,
    schedule: "cosine",
    weightDecay: 0.01,
    maxGradNorm: 1,
    steps: 12,
  };
  const data = new SeededRandom(8);
  const examples = Array.from({ length: 24 }, () => ({ ids: Array.from({ length: 6 + Math.floor(data.next() * 14) }, () => Math.floor(data.next() * 512)) }));

  test.each([
    ['bias "all"', "gpt2-tiny", base(GPT2, { bias: "all", init_lora_weights: true })],
    ["PiSSA", "gpt2-tiny", base(GPT2, { init_lora_weights: "pissa" })],
    ["lora_bias", "llama-tiny", base(LLAMA, { init_lora_weights: true, lora_bias: true, lora_dropout: 0 })],
    ["OLoRA", "llama-tiny", base(LLAMA, { init_lora_weights: "olora", bias: "lora_only" })],
    ["LoRA on wte", "gpt2-tiny", base(["wte", "c_fc"], { init_lora_weights: true })],
    ["DoRA", "gpt2-tiny", base(GPT2, { init_lora_weights: true, use_dora: true })],
    ["DoRA", "gemma2-tiny", base(LLAMA, { init_lora_weights: true, use_dora: true })],
    ["modules_to_save ln_f", "gpt2-tiny", base(GPT2, { init_lora_weights: true, modules_to_save: ["ln_f"] })],
    ["modules_to_save lm_head", "llama-tiny", base(LLAMA, { init_lora_weights: true, modules_to_save: ["lm_head", "model.norm"] })],
  ])("%s on %s: 12 steps give the tfjs trainer's losses within 1e-3; the adapter file has tfjs's keys, shapes and config", async (name, fixture, lora) => {
    await selectEngine();
    const dir = requireFixture(fixture);
    const training = await createOnnxLoraTraining({ model: dir, lora, seed: 9 });
    const model = await loadModel(dir);
    const tfjsTraining = createLoraTraining(
      model,
      createLoraConfig({ ...lora, fan_in_fan_out: fanInFanOut(fixture), task_type: "CAUSAL_LM", base_model_name_or_path: dir }),
      { seed: 9 },
    );
    const tfjs = new Trainer(model, tfjsTraining, examples, options);
    const trainer = new OnnxLoraTrainer(training.session, training.slots, training.params, examples, options, { parameters: training.parameters });
    try {
      for (let i = 0; i < 12; i++) {
        const theirs = tfjs.trainStep();
        const ours = await trainer.trainStep();
        expect(Math.abs(ours.loss - theirs.loss), `step ${i + 1}`).toBeLessThanOrEqual(1e-3);
      }
      const folder = (who: string) => path.join(tmp, `${name.replace(/\W+/g, "-")}-${who}`);
      await writeAdapter(folder("onnx"), training.adapter());
      await writeAdapter(folder("tfjs"), tfjsTraining.exportAdapter());
      const [ours, theirs] = [await readAdapter(folder("onnx")), await readAdapter(folder("tfjs"))];
      const shapes = (a: typeof ours) => Object.fromEntries([...a.tensors].map(([k, t]) => [k, t.shape]));
      expect(shapes(ours)).toEqual(shapes(theirs));
      const { target_modules: a, ...oursConfig } = ours.config;
      const { target_modules: b, ...theirsConfig } = theirs.config;
      expect(oursConfig).toEqual(theirsConfig);
      expect(new Set(a)).toEqual(new Set(b));
      // The trained values too (PiSSA / OLoRA's converted factors hold the initial ones beside the trained ones).
      for (const [key, t] of theirs.tensors) {
        const want = toFloat32(t);
        const scale = want.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        expect(maxAbsDiff(toFloat32(ours.tensors.get(key)!), want), key).toBeLessThanOrEqual(1e-3 * scale);
      }
      // As trained (raw) the factors keep their rank; the file's are converted to fit the original base.
      const raw = training.adapter({ raw: true });
      expect(raw.config.r).toBe(4);
      if (lora.init_lora_weights !== true) expect(ours.config.r).toBe(8);
    } finally {
      tfjs.dispose();
      model.store.dispose();
      await training.release();
    }
  });

  test("lora_dropout > 0 beside embedding LoRA: masks only for the linear modules (none on the embedding path, as in PEFT), seeded", async () => {
    const run = async () => {
      const training = await createOnnxLoraTraining({
        model: requireFixture("llama-tiny"),
        lora: base(["embed_tokens", "q_proj"], { lora_dropout: 0.1 }),
        seed: 4,
      });
      expect(training.session.inputNames.filter((n) => n.startsWith("lora_dropout_mask.")).map((n) => n.split(".").at(-1))).toEqual(["q_proj", "q_proj"]);
      const trainer = new OnnxLoraTrainer(
        training.session,
        training.slots,
        training.params,
        examples,
        { ...options, steps: 2 },
        { dropout: 0.1, parameters: training.parameters },
      );
      const losses = [(await trainer.trainStep()).loss, (await trainer.trainStep()).loss];
      await training.release();
      return losses;
    };
    const [a, b] = [await run(), await run()];
    expect(a).toEqual(b);
    expect(a.every(Number.isFinite)).toBe(true);
  });

  test("a checkpoint keeps PiSSA's factors as trained, with the biases and DoRA magnitudes; resuming from it repeats the uninterrupted losses", async () => {
    const dir = requireFixture("gpt2-tiny");
    const lora = base(GPT2, { init_lora_weights: "pissa", bias: "all", use_dora: true });
    const start = async () => {
      const training = await createOnnxLoraTraining({ model: dir, lora, seed: 6 });
      const trainer = new OnnxLoraTrainer(
        training.session,
        training.slots,
        training.params,
        examples,
        { ...options, steps: 6 },
        { parameters: training.parameters },
      );
      return { training, trainer };
    };
    const straight = await start();
    const losses: number[] = [];
    for (let i = 0; i < 6; i++) losses.push((await straight.trainer.trainStep()).loss);
    await straight.training.release();

    const first = await start();
    const log = [];
    for (let i = 0; i < 3; i++) log.push(await first.trainer.trainStep());
    const checkpoint = path.join(tmp, "checkpoint-3");
    await saveTrainingCheckpoint(checkpoint, onnxStepper(first.training, first.trainer), { seed: 2, log, baseDir: dir });
    await first.training.release();
    const saved = await readAdapter(checkpoint);
    expect(saved.config.r).toBe(4);
    expect(saved.tensors.get("base_model.model.transformer.h.0.attn.c_attn.lora_A.weight")!.shape).toEqual([4, 64]);
    expect(saved.tensors.has("base_model.model.transformer.h.0.attn.c_attn.base_layer.bias")).toBe(true);
    expect(saved.tensors.has("base_model.model.transformer.ln_f.bias")).toBe(true);
    expect(saved.tensors.has("base_model.model.transformer.h.0.attn.c_attn.lora_magnitude_vector")).toBe(true);

    const resumed = await start();
    try {
      await restoreTrainingCheckpoint(checkpoint, onnxStepper(resumed.training, resumed.trainer));
      for (let i = 3; i < 6; i++) expect((await resumed.trainer.trainStep()).loss, `step ${i + 1}`).toBeCloseTo(losses[i]!, 6);
    } finally {
      await resumed.training.release();
    }
  });
});
