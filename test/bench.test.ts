import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { afterAll, expect, test } from "vitest";
import { lowrank, repoRoot } from "./cli-helpers.js";

const tmp = mkdtempSync(path.join(os.tmpdir(), "lowrank-bench-test-"));
// The embedded base's shape: LoRA on c_attn adapts n_embd → 3·n_embd in each of n_layer blocks.
const base = JSON.parse(readFileSync(path.join(repoRoot, "models", "gpt2-mini", "config.json"), "utf8"));
const cAttnLora = (r: number) => base.n_layer * r * (base.n_embd + 3 * base.n_embd);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const REQUIRED_RATIOS = [
  "merged_over_base_latency",
  "unmerged_over_base_latency",
  "lora_over_full_step_time",
  "lora_over_full_peak_memory",
  "merge_over_copy_bandwidth",
  "lora_over_full_eval_loss",
  "tfjs_over_onnx_lora_step_time",
  "tfjs_over_onnx_generation_time",
  "mixed_over_single_adapter_batch_time",
  "serving_throughput_concurrent_over_single",
];

// `pnpm bench --quick` (bench/run.mjs → lowrank bench --quick) as CI runs it. The figures are
// timings, so the checks are on what must hold whatever the machine: every ratio measured, exact
// parameter counts, training that lowers the loss, and a report that shows it all.
test("pnpm bench --quick measures every claim and writes the JSON and the report", () => {
  const run = spawnSync(process.execPath, [path.join(repoRoot, "bench", "run.mjs"), "--quick", "--out-dir", tmp], { encoding: "utf8", cwd: repoRoot });
  expect(run.status, run.stderr).toBe(0);
  // Progress lines number the phases in the order they run: 1/N first, N/N last, never backwards.
  const phases = [...run.stderr.matchAll(/^(\d+)\/(\d+) /gm)].map((m): [number, number] => [Number(m[1]), Number(m[2])]);
  const total = phases[0]![1];
  expect(phases.every(([, t]) => t === total)).toBe(true);
  expect(phases.map(([n]) => n)).toEqual([...phases.map(([n]) => n)].sort((a, b) => a - b));
  expect(new Set(phases.map(([n]) => n))).toEqual(new Set(Array.from({ length: total }, (_, i) => i + 1)));
  const results = JSON.parse(readFileSync(path.join(tmp, "results.json"), "utf8"));
  expect(results.quick).toBe(true);
  for (const name of REQUIRED_RATIOS) {
    expect(typeof results.ratios[name], name).toBe("number");
    expect(results.ratios[name], name).toBeGreaterThan(0);
    expect(Number.isFinite(results.ratios[name]), name).toBe(true);
  }
  expect(results.machine.cores).toBeGreaterThan(0);
  expect(results.versions).toMatchObject({ lowrank: expect.any(String), tfjs: "4.22.0", onnxruntime_node: "1.30.0" });

  // GPT-2 small: 124,439,808 parameters (wte 50257×768 and wpe 1024×768 included, lm_head tied).
  // LoRA r on c_attn (768 → 2304) in 12 layers: 12·r·(768 + 2304); all-linear adds c_proj
  // (768 → 768), c_fc (768 → 3072) and mlp.c_proj (3072 → 768).
  const large = results.parameters.filter((p: { model: string }) => p.model.startsWith("GPT-2 small"));
  const count = (method: string) => large.find((p: { method: string }) => p.method === method).trainable_parameters;
  expect(count("full fine-tuning")).toBe(124_439_808);
  expect(count("LoRA r=4, attention (c_attn)")).toBe(12 * 4 * (768 + 2304));
  expect(count("LoRA r=8, attention (c_attn)")).toBe(12 * 8 * (768 + 2304));
  expect(count("LoRA r=8, all-linear")).toBe(12 * 8 * (768 + 2304 + 768 + 768 + 768 + 3072 + 3072 + 768));
  // The adapter file holds its float32 values plus a small header.
  const r4 = large.find((p: { method: string }) => p.method.startsWith("LoRA r=4"));
  expect(r4.file_bytes).toBeGreaterThan(4 * r4.trainable_parameters);
  expect(r4.file_bytes).toBeLessThan(4 * r4.trainable_parameters + 20_000);
  expect(results.ratios.full_over_lora_trainable_parameters).toBeCloseTo(124_439_808 / (12 * 4 * 3072), 6);

  // LoRA against full fine-tuning on ONNX Runtime: r=8 on c_attn in the embedded base's layers;
  // the same with activations recomputed (gradient checkpointing), compared with the holding row.
  const [training, recomputed] = results.training;
  expect(training.gradient_checkpointing).toBe(false);
  expect(recomputed.gradient_checkpointing).toBe(true);
  expect(training.lora.trainable_parameters).toBe(cAttnLora(8));
  expect(recomputed.lora.trainable_parameters).toBe(cAttnLora(8));
  expect(results.ratios.recomputed_over_held_lora_peak_memory).toBeCloseTo(recomputed.lora.peak_rss_bytes / training.lora.peak_rss_bytes, 12);
  expect(training.full.trainable_parameters).toBe(training.full.total_parameters);
  for (const mode of [training.lora, training.full]) {
    expect(mode.backend).toBe("onnx");
    expect(mode.step_seconds.min).toBeLessThanOrEqual(mode.step_seconds.median);
    expect(mode.peak_rss_bytes).toBeGreaterThan(0);
  }
  expect(results.ratios.lora_over_full_peak_memory).toBeCloseTo(training.lora.peak_rss_bytes / training.full.peak_rss_bytes, 12);

  // The same LoRA step on TensorFlow.js (issue 10): same trainable parameters as on ONNX Runtime.
  expect(results.onnx_training.onnx).toEqual(training.lora);
  expect(results.onnx_training.tfjs.backend).toBe("tfjs");
  expect(results.onnx_training.tfjs.trainable_parameters).toBe(training.lora.trainable_parameters);
  expect(results.ratios.tfjs_over_onnx_lora_step_time).toBeCloseTo(
    results.onnx_training.tfjs.step_seconds.median / results.onnx_training.onnx.step_seconds.median,
    12,
  );

  // Serving (issue 19): the mixed-adapter step on 8 adapters, and lowrank serve by concurrency with every request answered in full.
  expect(results.serving.mixed).toMatchObject({ batch: 8, adapters: 8, rank: 8 });
  expect(results.serving.serving.map((s: { clients: number }) => s.clients)).toEqual([1, 4]);
  for (const s of results.serving.serving) expect(s.latency_p95_seconds).toBeGreaterThanOrEqual(s.latency_p50_seconds);

  for (const row of results.latency)
    for (const k of ["ort_base", "ort_merged", "ort_unmerged", "tfjs_base", "tfjs_merged", "tfjs_unmerged"]) expect(row[k].median, k).toBeGreaterThan(0);
  expect(results.latency.map((r: { batch: number }) => r.batch)).toEqual([1, 8]);
  // Issue 17: batched generation on both runtimes, and batch-1 decoding beside its floor.
  expect(results.generation).toMatchObject({ prompts: 8, tfjs_batched: false });
  expect(results.ratios.tfjs_over_onnx_generation_time).toBeCloseTo(results.generation.tfjs_seconds.median / results.generation.onnx_seconds.median, 12);
  expect(results.decode.onnx_decode_tokens_per_second).toBeGreaterThan(0);
  expect(results.decode.decode_floor_tokens_per_second).toBeGreaterThan(0);
  expect(results.ratios.decode_over_floor).toBeCloseTo(results.decode.onnx_decode_tokens_per_second / results.decode.decode_floor_tokens_per_second, 12);
  expect(results.merge.file.merge_gb_per_s).toBeGreaterThan(0);
  // Bounded memory (issue 8): merging streams tensor by tensor, so the merging process never holds
  // the checkpoint — a whole-file merge would need more than the checkpoint's size.
  expect(results.merge_memory.checkpoint_bytes).toBeGreaterThan(300e6);
  expect(results.merge_memory.peak_rss_bytes).toBeLessThan(0.5 * results.merge_memory.checkpoint_bytes);

  const quality = Object.fromEntries(results.quality.results.map((q: { method: string }) => [q.method, q]));
  expect(quality.none.trainable_parameters).toBe(0);
  expect(quality.lora.trainable_parameters).toBe(cAttnLora(4));
  expect(quality.lora.eval_loss).toBeLessThan(quality.none.eval_loss);
  expect(quality.full.eval_loss).toBeLessThan(quality.none.eval_loss);
  expect(results.ratios.lora_over_full_eval_loss).toBeCloseTo(quality["lora-all-linear"].eval_loss / quality.full.eval_loss, 12);
  expect(results.ratios.lora_attention_over_full_eval_loss).toBeCloseTo(quality.lora.eval_loss / quality.full.eval_loss, 12);
  for (const q of results.quality.results) expect(q.bleu).toBeGreaterThanOrEqual(0);

  expect(results.targets.map((t: { ratio: string }) => t.ratio)).toEqual([
    "merged_over_base_latency",
    "unmerged_over_base_latency",
    "lora_over_full_step_time",
    "lora_over_full_peak_memory",
    "merge_over_copy_bandwidth",
    "lora_over_full_eval_loss",
    "tfjs_over_onnx_lora_step_time",
    "mixed_over_single_adapter_batch_time",
    "tfjs_over_onnx_generation_time",
  ]);
  const report = readFileSync(path.join(tmp, "benchmarks.md"), "utf8");
  expect(report).toContain("## The paper's claims, measured");
  expect(report).toContain("| full fine-tuning | 124,439,808 | 100% |");
  expect(report).toContain("## 3b. Generation with an unmerged adapter");
  expect(report).toContain("## 3c. Serving many adapters");
  expect(report).toContain("PyTorch 1.13 + PEFT");
  for (const chart of ["latency.svg", "training.svg", "quality.svg"]) {
    const svg = readFileSync(path.join(tmp, "benchmarks", chart), "utf8");
    expect(svg.startsWith("<svg"), chart).toBe(true);
    expect(report).toContain(`(benchmarks/${chart})`);
  }
}, 600_000);

test("lowrank bench refuses a model folder that is not there, in one line", () => {
  const run = lowrank(["bench", "--quick", "--model", path.join(tmp, "missing")]);
  expect(run.status).toBe(2);
  expect(run.stderr.trim().split("\n")).toHaveLength(1);
  expect(run.stderr).toMatch(/^lowrank: error: bench: cannot find the embedded model .*missing/);
  expect(existsSync(path.join(tmp, "missing"))).toBe(false);
});
