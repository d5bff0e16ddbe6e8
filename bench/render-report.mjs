#!/usr/bin/env node
// Writes docs/benchmarks.md from the JSON results in bench/out/ (produced by `pnpm bench`).
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const read = (name) => {
  const file = path.join(root, "bench", "out", name);
  return existsSync(file) ? JSON.parse(readFileSync(file, "utf8")) : undefined;
};
const ms = (s) => `${s.median_ms.toFixed(2)} (${s.min_ms.toFixed(2)}–${s.max_ms.toFixed(2)})`;
const sec = (s) => `${s.median.toFixed(3)} (${s.min.toFixed(3)}–${s.max.toFixed(3)})`;
const mb = (b) => `${(b / 1e6).toFixed(0)} MB`;
const lines = [
  "# Benchmarks",
  "",
  "Measured on this project's machine (2 cores, no GPU) by `pnpm bench`, which writes the JSON in",
  "`bench/out/` and this page. Every figure is a median over repeats after warm-up, with min–max in",
  "brackets; ratios compare variants measured in the same run.",
  "",
];

const merge = read("merge-throughput.json");
if (merge) {
  lines.push(
    "## Merge throughput (`bench/merge-throughput.mjs`)",
    "",
    `${merge.model}, all-linear LoRA r=${merge.rank} over ${merge.adapted_matrices} matrices (${(merge.adapted_bytes / 1e6).toFixed(0)} MB of ${(merge.checkpoint_bytes / 1e6).toFixed(0)} MB), float32.`,
    "",
    "| | seconds | GB/s | vs copy |",
    "|---|---|---|---|",
    `| in memory: plain copy of the adapted matrices | ${sec(merge.kernel.copy_seconds)} | ${merge.kernel.copy_gb_per_s.toFixed(2)} | 1 |`,
    `| in memory: merge (WebAssembly SIMD kernel) | ${(merge.kernel.merge_plus_copy_seconds.median - merge.kernel.copy_seconds.median).toFixed(3)} | ${merge.kernel.merge_gb_per_s.toFixed(2)} | ${merge.kernel.merge_over_copy.toFixed(2)}× |`,
    `| checkpoint file: plain copy (read, write, fsync, rename) | ${sec(merge.file.copy_seconds)} | ${merge.file.copy_gb_per_s.toFixed(2)} | 1 |`,
    `| checkpoint file: \`fs.copyFile\` (kernel copy, no fsync) | ${sec(merge.file.copyfile_seconds)} | ${merge.file.copyfile_gb_per_s.toFixed(2)} | |`,
    `| checkpoint file: \`mergeCheckpoint\` (read, merge, write, fsync, rename) | ${sec(merge.file.merge_seconds)} | ${merge.file.merge_gb_per_s.toFixed(2)} | ${merge.file.merge_over_copy.toFixed(2)}× |`,
    "",
  );
}

const train = read("train-step.json");
if (train) {
  const row = (r) => `| ${r.mode === "lora" ? "LoRA r=8 on c_attn" : "full fine-tuning"} | ${sec(r.step_seconds)} | ${Math.round(r.tokens_per_second)} | ${mb(r.peak_rss_bytes)} | ${mb(r.peak_tensor_bytes)} | ${r.trainable_parameters.toLocaleString("en-US")} of ${r.total_parameters.toLocaleString("en-US")} |`;
  lines.push(
    "## Training step, LoRA vs full fine-tuning (`bench/train-step.mjs`)",
    "",
    `${train.model}, batch ${train.batch} × ${train.seq_len}, TensorFlow.js ${train.engine}, AdamW, each mode in its own process.`,
    "",
    "| | s/step | tokens/s | peak RSS | peak tensor bytes | trainable parameters |",
    "|---|---|---|---|---|---|",
    row(train.lora),
    row(train.full),
    "",
    `LoRA/full: step time ${train.ratios.lora_over_full_step_time.toFixed(2)}×, peak RSS ${train.ratios.lora_over_full_peak_rss.toFixed(2)}×, peak tensor bytes ${train.ratios.lora_over_full_peak_tensor_bytes.toFixed(2)}×; ${Math.round(train.ratios.full_over_lora_trainable_parameters)}× fewer trainable parameters. At this small size activations dominate memory; the optimizer state and gradients LoRA saves grow with the model.`,
    "",
  );
}

const infer = read("inference-latency.json");
if (infer) {
  lines.push(
    "## Inference latency: base, merged, unmerged (`bench/inference-latency.mjs`)",
    "",
    `The PEFT fixtures' tiny GPT-2 and LLaMA (ONNX exports and Hugging Face folders), sequence 32, milliseconds; ONNX Runtime on the CPU, TensorFlow.js on ${infer.engine}. Merged = adapter folded into the weights; unmerged = ORT runtime slots fed per run / tfjs LoRA branch beside the frozen weights. Variants are interleaved run by run.`,
    "",
    "| model | batch | ORT base | ORT merged | ORT unmerged | tfjs base | tfjs merged | tfjs unmerged |",
    "|---|---|---|---|---|---|---|---|",
    ...infer.results.map((r) => `| ${r.model} | ${r.batch} | ${ms(r.ort_base)} | ${ms(r.ort_merged)} | ${ms(r.ort_unmerged)} | ${ms(r.tfjs_base)} | ${ms(r.tfjs_merged)} | ${ms(r.tfjs_unmerged)} |`),
    "",
    `Ratios (mean over rows): ORT merged/base ${infer.ratios.merged_over_base_latency.toFixed(2)}, ORT unmerged/base ${infer.ratios.unmerged_over_base_latency.toFixed(2)}, tfjs merged/base ${infer.ratios.tfjs_merged_over_base_latency.toFixed(2)}, tfjs unmerged/base ${infer.ratios.tfjs_unmerged_over_base_latency.toFixed(2)}, tfjs/ORT ${infer.ratios.tfjs_over_ort_base_latency.toFixed(1)}. Sub-millisecond runs are noisy (see the ranges); a merged adapter runs the base model's graph with other weight values.`,
    "",
  );
}
writeFileSync(path.join(root, "docs", "benchmarks.md"), `${lines.join("\n")}`);
console.log("wrote docs/benchmarks.md");
