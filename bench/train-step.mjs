#!/usr/bin/env node
// LoRA vs full fine-tuning on the tfjs backend, same model, batch and engine, in one run:
// step time, tokens/s, peak memory (process RSS and tfjs tensor bytes) and trainable parameters.
//
//   node bench/train-step.mjs [--quick] [--json out.json] [--steps N]
//
// Each mode runs in a child process of its own so their peak RSS do not mix. The model is
// GPT-2-shaped with random weights (6 layers × 384, vocab 8192; --quick: 2 × 128, vocab 2048),
// LoRA r=8 on c_attn (the paper's GPT-2 setting on the attention projection).
import { spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile, mkdir } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const args = process.argv.slice(2);
const quick = args.includes("--quick");
const flag = (name, fallback) => (args.includes(name) ? args[args.indexOf(name) + 1] : fallback);
const shape = quick ? { layers: 2, hidden: 128, heads: 4, vocab: 2048 } : { layers: 6, hidden: 384, heads: 6, vocab: 8192 };
const batch = quick ? 4 : 8;
const seqLen = quick ? 32 : 128;
const steps = Number(flag("--steps", quick ? 6 : 12));
const warmup = 2;

async function child(mode, modelDir, dataFile) {
  const tf = await import("@tensorflow/tfjs");
  const { selectEngine, TfjsBackend } = await import("@lowrank/backend-tfjs");
  const engine = await selectEngine();
  const backend = new TfjsBackend();
  await backend.init({ logger: { warn: () => {}, info: () => {} } });
  const times = [];
  let start;
  const out = await mkdtemp(path.join(os.tmpdir(), `bench-${mode}-`));
  // tf.profile tracks the peak of live tensor bytes inside the steps (a sampler would only see the
  // quiet moments between them); the kernel's high-water mark VmHWM gives the peak RSS.
  const profiling = !args.includes("--no-profile");
  const body = async () => {
    for await (const event of backend.train({
      model: modelDir, data: dataFile, out, steps: warmup + steps, batchSize: batch, seqLen, learningRate: 1e-4, full: mode === "full",
      lora: { r: 8, lora_alpha: 16, target_modules: ["c_attn"] }, seed: 1,
    })) {
      if (event.type === "start") start = event;
      if (event.type === "step" && event.step > warmup) times.push(event);
      if (event.type === "step" && process.env.LOWRANK_BENCH_VERBOSE) process.stderr.write(`${mode} step ${event.step}: ${event.seconds.toFixed(2)} s\n`);
    }
  };
  const profile = profiling ? await tf.profile(body) : (await body(), { peakBytes: NaN });
  const peakTensorBytes = profile.peakBytes;
  const hwm = /VmHWM:\s+(\d+) kB/.exec(await readFile("/proc/self/status", "utf8").catch(() => ""));
  const peakRss = hwm ? Number(hwm[1]) * 1024 : process.memoryUsage().rss;
  await rm(out, { recursive: true, force: true });
  const sorted = times.map((t) => t.seconds).sort((a, b) => a - b);
  const result = {
    mode, engine: engine.engine, trainable_parameters: start.trainableParameters, total_parameters: start.totalParameters,
    step_seconds: { median: sorted[Math.floor(sorted.length / 2)], min: sorted[0], max: sorted.at(-1) },
    tokens_per_second: times.reduce((s, t) => s + t.tokens, 0) / times.reduce((s, t) => s + t.seconds, 0),
    peak_rss_bytes: peakRss, peak_tensor_bytes: peakTensorBytes,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

async function main() {
  const { float32Tensor, SeededRandom, writeSafetensors } = await import("@lowrank/core");
  const dir = await mkdtemp(path.join(os.tmpdir(), "lowrank-bench-train-"));
  try {
    const modelDir = path.join(dir, "model");
    await mkdir(modelDir);
    const { layers, hidden: h, heads, vocab } = shape;
    await writeFile(path.join(modelDir, "config.json"), JSON.stringify({ model_type: "gpt2", architectures: ["GPT2LMHeadModel"], n_layer: layers, n_head: heads, n_embd: h, n_positions: 256, vocab_size: vocab, layer_norm_epsilon: 1e-5, activation_function: "gelu_new" }));
    const rng = new SeededRandom(1);
    const tensors = new Map();
    const put = (name, dims, scale = 0.02) => tensors.set(name, float32Tensor(Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => rng.normal() * scale), dims));
    put("transformer.wte.weight", [vocab, h]);
    put("transformer.wpe.weight", [256, h]);
    for (let i = 0; i < layers; i++) {
      const p = `transformer.h.${i}`;
      for (const ln of ["ln_1", "ln_2"]) { tensors.set(`${p}.${ln}.weight`, float32Tensor(new Float32Array(h).fill(1), [h])); put(`${p}.${ln}.bias`, [h], 0); }
      for (const [name, a, b] of [["attn.c_attn", h, 3 * h], ["attn.c_proj", h, h], ["mlp.c_fc", h, 4 * h], ["mlp.c_proj", 4 * h, h]]) { put(`${p}.${name}.weight`, [a, b]); put(`${p}.${name}.bias`, [b], 0); }
    }
    tensors.set("transformer.ln_f.weight", float32Tensor(new Float32Array(h).fill(1), [h]));
    put("transformer.ln_f.bias", [h], 0);
    await writeSafetensors(path.join(modelDir, "model.safetensors"), tensors, { format: "pt" });
    const dataFile = path.join(dir, "data.jsonl");
    const lines = Array.from({ length: batch * (warmup + steps) }, () => JSON.stringify({ input_ids: Array.from({ length: seqLen }, () => Math.floor(rng.next() * vocab)) }));
    await writeFile(dataFile, lines.join("\n"));
    const self = fileURLToPath(import.meta.url);
    const results = {};
    for (const mode of ["lora", "full"]) {
      const run = spawnSync(process.execPath, [self, "--child", mode, modelDir, dataFile, ...(quick ? ["--quick"] : []), ...(args.includes("--no-profile") ? ["--no-profile"] : []), "--steps", String(steps)], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
      if (run.status !== 0) throw new Error(`${mode} run failed: ${run.stderr}`);
      results[mode] = JSON.parse(run.stdout.trim().split("\n").at(-1));
    }
    const { lora, full } = results;
    const summary = {
      model: `GPT-2-shaped ${layers} layers × ${h}, vocab ${vocab} (random weights)`, batch, seq_len: seqLen, steps_timed: steps, engine: lora.engine,
      lora, full,
      ratios: {
        lora_over_full_step_time: lora.step_seconds.median / full.step_seconds.median,
        lora_over_full_peak_rss: lora.peak_rss_bytes / full.peak_rss_bytes,
        lora_over_full_peak_tensor_bytes: lora.peak_tensor_bytes / full.peak_tensor_bytes,
        full_over_lora_trainable_parameters: full.trainable_parameters / lora.trainable_parameters,
      },
    };
    const mb = (b) => `${(b / 1e6).toFixed(0)} MB`;
    console.log(`training step — ${summary.model}, batch ${batch} × ${seqLen}, ${lora.engine}, median of ${steps} steps after ${warmup} warm-up`);
    for (const r of [lora, full]) {
      console.log(`  ${r.mode.padEnd(4)}  ${r.step_seconds.median.toFixed(3)} s/step (${r.step_seconds.min.toFixed(3)}–${r.step_seconds.max.toFixed(3)})  ${Math.round(r.tokens_per_second)} tok/s  peak RSS ${mb(r.peak_rss_bytes)}  peak tensors ${mb(r.peak_tensor_bytes)}  trainable ${r.trainable_parameters.toLocaleString("en-US")} of ${r.total_parameters.toLocaleString("en-US")}`);
    }
    console.log(`  LoRA/full: step time ${summary.ratios.lora_over_full_step_time.toFixed(2)}×, peak RSS ${summary.ratios.lora_over_full_peak_rss.toFixed(2)}×, peak tensor bytes ${summary.ratios.lora_over_full_peak_tensor_bytes.toFixed(2)}×; ${Math.round(summary.ratios.full_over_lora_trainable_parameters)}× fewer trainable parameters`);
    const jsonOut = flag("--json", undefined);
    if (jsonOut) {
      await mkdir(path.dirname(path.resolve(jsonOut)), { recursive: true });
      await writeFile(jsonOut, `${JSON.stringify(summary, null, 2)}\n`);
      console.log(`wrote ${jsonOut}`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (args[0] === "--child") await child(args[1], args[2], args[3]);
else await main();
