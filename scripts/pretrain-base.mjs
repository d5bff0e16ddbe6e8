#!/usr/bin/env node
// Reproduces the embedded base model models/gpt2-mini: a small GPT-2 pretrained from scratch with
// lowrank itself (full fine-tuning on ONNX Runtime; `--backend tfjs` for the second backend) on DART
// (data/dart, MIT), written as a Hugging Face folder. E2E, the demo's adaptation task, is not used.
//
//   node scripts/pretrain-base.mjs [--epochs N] [--steps N] [--layers N] [--hidden N] [--heads N]
//                                  [--backend onnx|tfjs] [--bf16] [--out models/gpt2-mini]
//
// `--bf16` stores the trained weights as bfloat16 (half the bytes: twice the parameters fit the
// repository's 50 MB budget); training itself runs in float32.
//
// Each DART example becomes "<subject> : <relation> : <object> | … || <text>", the same shape as
// E2E's "<attribute> : <value> | … || <text>", so the model learns data-to-text in general.
import { copyFileSync, mkdirSync, readFileSync, writeFileSync, rmSync, mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { float32Tensor, readSafetensors, toFloat32, writeSafetensors } from "@lowrank/core";
import { fromFloat32, SeededRandom } from "@lowrank/core/internal";
import { OnnxBackend } from "@lowrank/backend-onnx";
import { TfjsBackend } from "@lowrank/backend-tfjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const flag = (name, fallback) => (args.includes(name) ? args[args.indexOf(name) + 1] : fallback);
const epochs = Number(flag("--epochs", "3"));
const steps = flag("--steps", undefined);
const backendName = flag("--backend", "onnx");
const bf16 = args.includes("--bf16");
const out = path.resolve(flag("--out", path.join(root, "models", "gpt2-mini")));

const CONFIG = {
  architectures: ["GPT2LMHeadModel"],
  model_type: "gpt2",
  activation_function: "gelu_new",
  n_layer: Number(flag("--layers", "6")),
  n_head: Number(flag("--heads", "6")),
  n_embd: Number(flag("--hidden", "384")),
  n_positions: 256,
  n_ctx: 256,
  vocab_size: 4096,
  bos_token_id: 4095,
  eos_token_id: 4095,
  layer_norm_epsilon: 1e-5,
  initializer_range: 0.02,
  resid_pdrop: 0.1,
  embd_pdrop: 0.1,
  attn_pdrop: 0.1,
  scale_attn_weights: true,
  tie_word_embeddings: true,
  torch_dtype: "float32",
};

/** transformers' GPT-2 initialisation: N(0, 0.02), output projections scaled by 1/√(2·n_layer), biases 0, LayerNorm 1. */
function initialWeights(seed) {
  const rng = new SeededRandom(seed);
  const { n_layer: L, n_embd: d, vocab_size: V, n_positions: P } = CONFIG;
  const tensors = new Map();
  const normal = (name, shape, std) =>
    tensors.set(
      name,
      float32Tensor(
        Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal() * std),
        shape,
      ),
    );
  const fill = (name, shape, value) => tensors.set(name, float32Tensor(new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(value), shape));
  normal("transformer.wte.weight", [V, d], 0.02);
  normal("transformer.wpe.weight", [P, d], 0.01);
  for (let i = 0; i < L; i++) {
    const p = `transformer.h.${i}`;
    for (const ln of ["ln_1", "ln_2"]) {
      fill(`${p}.${ln}.weight`, [d], 1);
      fill(`${p}.${ln}.bias`, [d], 0);
    }
    for (const [name, a, b, scaled] of [
      ["attn.c_attn", d, 3 * d, false],
      ["attn.c_proj", d, d, true],
      ["mlp.c_fc", d, 4 * d, false],
      ["mlp.c_proj", 4 * d, d, true],
    ]) {
      normal(`${p}.${name}.weight`, [a, b], scaled ? 0.02 / Math.sqrt(2 * L) : 0.02);
      fill(`${p}.${name}.bias`, [b], 0);
    }
  }
  fill("transformer.ln_f.weight", [d], 1);
  fill("transformer.ln_f.bias", [d], 0);
  return tensors;
}

function dartLines() {
  const dart = JSON.parse(readFileSync(path.join(root, "data", "dart", "dart-v1.1.1-full-dev.json"), "utf8"));
  const lines = [];
  for (const item of dart) {
    const data = item.tripleset.map(([s, r, o]) => `${s} : ${r.toLowerCase().replace(/_/g, " ")} : ${o}`).join(" | ");
    for (const a of item.annotations) lines.push(`${data} || ${a.text.trim()}`.replace(/\s+/g, " "));
  }
  return lines;
}

const work = mkdtempSync(path.join(os.tmpdir(), "lowrank-pretrain-"));
try {
  const init = path.join(work, "init");
  mkdirSync(init);
  writeFileSync(path.join(init, "config.json"), JSON.stringify(CONFIG, null, 2));
  copyFileSync(path.join(out, "tokenizer.json"), path.join(init, "tokenizer.json"));
  await writeSafetensors(path.join(init, "model.safetensors"), initialWeights(20261129), { format: "pt" });
  const lines = dartLines();
  const data = path.join(work, "dart.txt");
  writeFileSync(data, lines.join("\n"));
  console.log(`pretraining on ${lines.length} DART examples (${steps === undefined ? `${epochs} epochs` : `${steps} steps`}) on ${backendName}`);
  const backend = backendName === "tfjs" ? new TfjsBackend() : new OnnxBackend();
  await backend.init({ logger: { warn: (m) => console.warn(m), info: () => {} } });
  const trained = path.join(work, "trained");
  let summary;
  for await (const e of backend.train({
    model: init,
    data,
    out: trained,
    full: true,
    ...(steps === undefined ? { epochs } : { steps: Number(steps) }),
    learningRate: 1.5e-3,
    warmupSteps: 100,
    schedule: "cosine",
    batchSize: 16,
    seqLen: 96,
    weightDecay: 0.01,
    seed: 1,
  })) {
    if (e.type === "start") console.log(`${e.totalSteps} steps, ${e.trainableParameters.toLocaleString("en-US")} parameters`);
    if (e.type === "step" && (e.step % 50 === 0 || e.step === 1))
      console.log(`step ${e.step}  loss ${e.loss.toFixed(3)}  ${Math.round(e.tokensPerSecond)} tok/s`);
    if (e.type === "done") summary = e;
  }
  if (bf16) {
    const { tensors } = await readSafetensors(path.join(trained, "model.safetensors"));
    const halved = new Map([...tensors].map(([name, t]) => [name, { dtype: "BF16", shape: t.shape, data: fromFloat32(toFloat32(t, name), "BF16", name) }]));
    await writeSafetensors(path.join(out, "model.safetensors"), halved, { format: "pt" });
  } else {
    copyFileSync(path.join(trained, "model.safetensors"), path.join(out, "model.safetensors"));
  }
  writeFileSync(path.join(out, "config.json"), `${JSON.stringify({ ...CONFIG, torch_dtype: bf16 ? "bfloat16" : "float32" }, null, 2)}\n`);
  writeFileSync(path.join(out, "generation_config.json"), `${JSON.stringify({ bos_token_id: 4095, eos_token_id: 4095 }, null, 2)}\n`);
  writeFileSync(path.join(out, "training_summary.json"), readFileSync(path.join(trained, "training_summary.json")));
  console.log(`done: ${summary.steps} steps in ${summary.seconds.toFixed(0)} s, final loss ${summary.finalLoss.toFixed(3)}; wrote ${out}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
