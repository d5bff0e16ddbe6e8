import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { float32Tensor, readAdapter, writeSafetensors, type Tensor, type TrainEvent, type TrainParams } from "@lowrank/core";
import { runTraining, SeededRandom } from "@lowrank/core/internal";
import { requireFixture, sharedDir } from "@lowrank/core/testing";
import { selectEngine } from "../engine/select-engine.js";
import { prepareTfjsTraining } from "./prepare-tfjs-training.js";

const tmp = mkdtempSync(path.join(os.tmpdir(), "lowrank-tasks-"));
beforeAll(async () => {
  await selectEngine();
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function drain(events: AsyncGenerator<TrainEvent>): Promise<TrainEvent[]> {
  const all: TrainEvent[] = [];
  for await (const e of events) all.push(e);
  return all;
}
const losses = (events: TrainEvent[]) => events.flatMap((e) => (e.type === "step" ? [e.loss] : []));
const logger = { warn: () => undefined, info: () => undefined };
const trainTfjs = (params: TrainParams) => runTraining(prepareTfjsTraining({ logger, device: "test" }), params, { backend: "tfjs" });

describe("training tasks", () => {
  test("sequence classification (RoBERTa): loss falls, the head is saved as modules_to_save", async () => {
    const rng = new SeededRandom(4);
    const lines = Array.from({ length: 32 }, (_, i) => {
      const label = i % 3;
      // Each class draws its tokens from its own pair of ids: learnable by a tiny random encoder.
      const ids = [0, ...Array.from({ length: 8 }, () => 10 + label * 2 + Math.floor(rng.next() * 2)), 2];
      return JSON.stringify({ input_ids: ids, label });
    });
    const data = path.join(tmp, "cls.jsonl");
    writeFileSync(data, lines.join("\n"));
    const out = path.join(tmp, "cls");
    const events = await drain(
      trainTfjs({
        model: requireFixture("roberta-tiny"),
        data,
        out,
        steps: 60,
        learningRate: 2e-2,
        schedule: "constant",
        batchSize: 8,
        lora: { r: 4, lora_alpha: 8 },
      }),
    );
    const l = losses(events);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean(l.slice(-8))).toBeLessThan(mean(l.slice(0, 8)) * 0.7);
    const adapter = await readAdapter(out);
    expect(adapter.config).toMatchObject({ task_type: "SEQ_CLS", target_modules: ["query", "value"], modules_to_save: ["classifier", "score"] });
    expect([...adapter.tensors.keys()].filter((k) => k.includes("classifier")).sort()).toEqual([
      "base_model.model.classifier.dense.bias",
      "base_model.model.classifier.dense.weight",
      "base_model.model.classifier.out_proj.bias",
      "base_model.model.classifier.out_proj.weight",
    ]);
    // PEFT's default targets for RoBERTa: query and value.
    expect(
      [...adapter.tensors.keys()]
        .filter((k) => k.endsWith("lora_A.weight"))
        .map((k) => k.split(".").slice(-3, -2)[0])
        .sort(),
    ).toEqual(["query", "query", "value", "value"]);
  });

  test("text data goes through the model's tokenizer.json (GPT-2 BPE on E2E text)", async () => {
    // A small random GPT-2 with the real 50,257-token vocabulary, so the real tokenizer fits.
    const dir = path.join(tmp, "gpt2-bpe");
    mkdirSync(dir);
    const config = {
      model_type: "gpt2",
      architectures: ["GPT2LMHeadModel"],
      n_layer: 1,
      n_head: 2,
      n_embd: 16,
      n_positions: 64,
      vocab_size: 50257,
      eos_token_id: 50256,
      bos_token_id: 50256,
      layer_norm_epsilon: 1e-5,
      activation_function: "gelu_new",
    };
    writeFileSync(path.join(dir, "config.json"), JSON.stringify(config));
    copyFileSync(path.join(sharedDir(), "data", "gpt2-tokenizer", "tokenizer.json"), path.join(dir, "tokenizer.json"));
    const rng = new SeededRandom(9);
    const random = (shape: number[], scale = 0.02) =>
      float32Tensor(
        Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal() * scale),
        shape,
      );
    const tensors = new Map<string, Tensor>([
      ["transformer.wte.weight", random([50257, 16])],
      ["transformer.wpe.weight", random([64, 16])],
      ["transformer.h.0.ln_1.weight", float32Tensor(new Float32Array(16).fill(1), [16])],
      ["transformer.h.0.ln_1.bias", random([16], 0)],
      ["transformer.h.0.attn.c_attn.weight", random([16, 48])],
      ["transformer.h.0.attn.c_attn.bias", random([48], 0)],
      ["transformer.h.0.attn.c_proj.weight", random([16, 16])],
      ["transformer.h.0.attn.c_proj.bias", random([16], 0)],
      ["transformer.h.0.ln_2.weight", float32Tensor(new Float32Array(16).fill(1), [16])],
      ["transformer.h.0.ln_2.bias", random([16], 0)],
      ["transformer.h.0.mlp.c_fc.weight", random([16, 64])],
      ["transformer.h.0.mlp.c_fc.bias", random([64], 0)],
      ["transformer.h.0.mlp.c_proj.weight", random([64, 16])],
      ["transformer.h.0.mlp.c_proj.bias", random([16], 0)],
      ["transformer.ln_f.weight", float32Tensor(new Float32Array(16).fill(1), [16])],
      ["transformer.ln_f.bias", random([16], 0)],
    ]);
    await writeSafetensors(path.join(dir, "model.safetensors"), tensors, { format: "pt" });
    const text = readFileSync(path.join(sharedDir(), "data", "e2e", "valid.txt"), "utf8")
      .split("\n")
      .filter(Boolean)
      .slice(0, 16)
      .map((l) => l.replace("||", " = "))
      .join("\n");
    const data = path.join(tmp, "e2e.txt");
    writeFileSync(data, text);
    const out = path.join(tmp, "bpe-out");
    const events = await drain(trainTfjs({ model: dir, data, out, steps: 4, learningRate: 1e-2, batchSize: 4, seqLen: 32, lora: { r: 2, lora_alpha: 4 } }));
    const start = events.find((e) => e.type === "start");
    expect(start).toMatchObject({ examples: 16, totalSteps: 4 });
    expect(losses(events)).toHaveLength(4);
    // A random model over 50,257 tokens starts near ln(50257) ≈ 10.8.
    expect(Math.abs(losses(events)[0]! - Math.log(50257))).toBeLessThan(0.5);
  });
});

describe("a trained adapter reloads with identical outputs", () => {
  test.each([
    ["LoRA with bias all", { r: 4, lora_alpha: 8, bias: "all" as const, target_modules: ["c_attn", "c_fc"] }],
    ["DoRA", { r: 4, lora_alpha: 8, use_dora: true, target_modules: ["c_attn"] }],
    ["rsLoRA with rank_pattern", { r: 4, lora_alpha: 8, use_rslora: true, target_modules: ["c_attn", "c_proj"], rank_pattern: { "h.1.attn.c_proj": 2 } }],
    // Trained against the residual base, saved (as PEFT converts them) to fit the original one.
    ["PiSSA", { r: 4, lora_alpha: 8, init_lora_weights: "pissa", target_modules: ["c_attn"] }],
    ["OLoRA with rsLoRA", { r: 4, lora_alpha: 8, init_lora_weights: "olora", use_rslora: true, target_modules: ["c_fc"] }],
    // LoRA on the input embedding (PEFT: lora_embedding_A zero-initialised, B normal) with q_proj and v_proj.
    ["embedding LoRA (llama)", { r: 4, lora_alpha: 16, target_modules: ["embed_tokens", "q_proj", "v_proj"], base: "llama-tiny" }],
  ])("%s: the loss falls, and the saved adapter reloads with identical outputs", async (_name, settings) => {
    const { base = "gpt2-tiny", ...lora } = settings as typeof settings & { base?: string };
    const { loadModel } = await import("../models/load-model.js");
    const { attachAdapter } = await import("../lora/attach-adapter.js");
    const { createLoraTraining } = await import("./trainable.js");
    const { Trainer } = await import("./trainer.js");
    const { createLoraConfig } = await import("@lowrank/core");
    const { inferenceContext } = await import("../layers/lora-branch.js");
    const tf = await import("@tensorflow/tfjs");
    const examples = Array.from({ length: 8 }, (_, i) => ({ ids: Array.from({ length: 12 }, (_, j) => (i * 31 + j * 7) % 500) }));
    const model = await loadModel(requireFixture(base));
    const training = createLoraTraining(model, createLoraConfig({ fan_in_fan_out: base === "gpt2-tiny", init_lora_weights: false, ...lora }), { seed: 2 });
    const trainer = new Trainer(model, training, examples, { task: "causal-lm", steps: 6, learningRate: 1e-2, batchSize: 8, seed: 1, padTokenId: 0 });
    const losses = Array.from({ length: 6 }, () => trainer.trainStep().loss);
    expect(losses[5]).toBeLessThan(losses[0]!);
    const ids = [[1, 2, 3, 4, 5, 6]];
    const run = (m: typeof model) => {
      const out = m.forward({ inputIds: tf.tensor2d(ids, undefined, "int32") }, inferenceContext());
      const values = out.logits.dataSync() as Float32Array;
      out.logits.dispose();
      return values;
    };
    const trained = run(model);
    const dir = path.join(tmp, `reload-${Math.random().toString(36).slice(2)}`);
    const { writeAdapter } = await import("@lowrank/core");
    await writeAdapter(dir, training.exportAdapter());
    const saved = await readAdapter(dir);
    if ("bias" in lora && lora.bias === "all") expect([...saved.tensors.keys()].some((k) => k.endsWith("c_attn.base_layer.bias"))).toBe(true);
    if ("use_dora" in lora && lora.use_dora) expect([...saved.tensors.keys()].some((k) => k.endsWith("lora_magnitude_vector"))).toBe(true);
    if (lora.target_modules.includes("embed_tokens")) expect([...saved.tensors.keys()].some((k) => k.endsWith("embed_tokens.lora_embedding_A"))).toBe(true);
    const fresh = await loadModel(requireFixture(base));
    const before = run(fresh);
    attachAdapter(fresh, saved);
    const reloaded = run(fresh);
    let diff = 0;
    let moved = 0;
    for (let i = 0; i < trained.length; i++) {
      diff = Math.max(diff, Math.abs(trained[i]! - reloaded[i]!));
      moved = Math.max(moved, Math.abs(trained[i]! - before[i]!));
    }
    expect(diff).toBeLessThan(1e-5);
    expect(moved).toBeGreaterThan(1e-3);
  });
});
