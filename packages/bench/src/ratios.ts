import type { BenchResults, TargetCheck } from "./bench-results.js";

type Measured = Pick<BenchResults, "parameters" | "training" | "latency" | "merge" | "quality"> &
  Partial<Pick<BenchResults, "merge_memory" | "onnx_training" | "generation" | "decode" | "serving">>;

/** The paper's claims as ratios of figures measured in the same run (each target says whether lower or higher is better). */
export function computeRatios(m: Measured): Record<string, number> {
  // The headline model is the realistic-size one when the run measured it, else the embedded base.
  const headline = <T extends { model: string }>(rows: T[]): T[] => {
    const large = rows.filter((r) => r.model.startsWith("GPT-2 small"));
    return large.length > 0 ? large : rows;
  };
  const latencyAt = (batch: number) => headline(m.latency).find((r) => r.batch === batch);
  const b1 = latencyAt(1);
  const b8 = latencyAt(8);
  // Training ratios need both modes: the largest model where full fine-tuning ran.
  const held = m.training.filter((t) => !t.gradient_checkpointing);
  const train = [...held].reverse().find((t) => t.full !== null) as
    | (Measured["training"][number] & { full: NonNullable<Measured["training"][number]["full"]> })
    | undefined;
  const params = headline(m.parameters);
  const full = params.find((p) => p.method === "full fine-tuning");
  const r4 = params.find((p) => p.method.startsWith("LoRA r=4"));
  const quality = (method: string) => m.quality.results.find((q) => q.method === method);
  const ratios: Record<string, number> = {};
  const put = (name: string, value: number | undefined): void => {
    if (value !== undefined && Number.isFinite(value)) ratios[name] = value;
  };
  put("merged_over_base_latency", b1 && b1.ort_merged.median / b1.ort_base.median);
  put("unmerged_over_base_latency", b1 && b1.ort_unmerged.median / b1.ort_base.median);
  put("merged_over_base_latency_batch8", b8 && b8.ort_merged.median / b8.ort_base.median);
  put("unmerged_over_base_latency_batch8", b8 && b8.ort_unmerged.median / b8.ort_base.median);
  put("tfjs_merged_over_base_latency", b1 && b1.tfjs_merged.median / b1.tfjs_base.median);
  put("tfjs_unmerged_over_base_latency", b1 && b1.tfjs_unmerged.median / b1.tfjs_base.median);
  put("tfjs_over_ort_base_latency", b1 && b1.tfjs_base.median / b1.ort_base.median);
  put("tfjs_over_onnx_generation_time", m.generation && m.generation.tfjs_seconds.median / m.generation.onnx_seconds.median);
  put("decode_over_floor", m.decode && m.decode.onnx_decode_tokens_per_second / m.decode.decode_floor_tokens_per_second);
  put("lora_over_full_step_time", train && train.lora.step_seconds.median / train.full.step_seconds.median);
  put("lora_over_full_peak_memory", train && train.lora.peak_rss_bytes / train.full.peak_rss_bytes);
  // Gradient checkpointing: the recomputing row against the holding one of the same model and batch.
  const recomputed = m.training.find((t) => t.gradient_checkpointing && train && t.model === train.model && t.batch_size === train.batch_size);
  put("recomputed_over_held_lora_peak_memory", recomputed && train && recomputed.lora.peak_rss_bytes / train.lora.peak_rss_bytes);
  put("recomputed_over_held_lora_step_time", recomputed && train && recomputed.lora.step_seconds.median / train.lora.step_seconds.median);
  put("recomputed_over_held_full_peak_memory", recomputed?.full && train ? recomputed.full.peak_rss_bytes / train.full.peak_rss_bytes : undefined);
  put("lora_over_full_peak_tensor_bytes", train && train.lora.peak_tensor_bytes / train.full.peak_tensor_bytes);
  put("tfjs_over_onnx_lora_step_time", m.onnx_training && m.onnx_training.tfjs.step_seconds.median / m.onnx_training.onnx.step_seconds.median);
  put("merge_over_copy_bandwidth", m.merge.file.merge_gb_per_s / m.merge.file.copy_gb_per_s);
  put("merge_over_copy_bandwidth_in_memory", m.merge.kernel.merge_gb_per_s / m.merge.kernel.copy_gb_per_s);
  put("merge_peak_rss_over_checkpoint_size", m.merge_memory && m.merge_memory.peak_rss_bytes / m.merge_memory.checkpoint_bytes);
  put("full_over_lora_trainable_parameters", full && r4 && full.trainable_parameters / r4.trainable_parameters);
  put("full_over_lora_file_size", full && r4 && full.file_bytes / r4.file_bytes);
  // Quality: LoRA on every linear layer (PEFT's "all-linear", r=8) and the output head (r=32), and the paper's attention-only r=4 beside it.
  const lora = quality("lora-all-linear");
  const attention = quality("lora");
  const fullFt = quality("full");
  put("lora_over_full_eval_loss", lora && fullFt && lora.eval_loss / fullFt.eval_loss);
  put("lora_over_full_bleu", lora && fullFt && lora.bleu / fullFt.bleu);
  put("lora_attention_over_full_eval_loss", attention && fullFt && attention.eval_loss / fullFt.eval_loss);
  // Serving (issue 19): the mixed-adapter step, and the most concurrent clients' throughput over one client's.
  const serving = m.serving;
  put("mixed_over_single_adapter_batch_time", serving && serving.mixed.mixed_ms.median / serving.mixed.single_ms.median);
  const [alone, busiest] = [serving?.serving[0], serving?.serving.at(-1)];
  put("serving_throughput_concurrent_over_single", alone && busiest && busiest.tokens_per_second / alone.tokens_per_second);
  return ratios;
}

const target = (ratio: string, claim: string, op: "<=" | ">=", bound: number) => ({
  ratio,
  check(ratios: Record<string, number>): TargetCheck {
    const value = ratios[ratio];
    const known = value !== undefined;
    return {
      ratio,
      claim,
      target: `${op === "<=" ? "≤" : "≥"} ${bound}`,
      value: known ? value : null,
      met: known && (op === "<=" ? value <= bound : value >= bound),
    };
  },
});

/** The targets, one per claim. */
export const TARGETS = [
  target("merged_over_base_latency", "no added inference latency once merged (ORT, batch 1)", "<=", 1.01),
  target("unmerged_over_base_latency", "an unmerged r=8 adapter costs little (ORT, batch 1)", "<=", 1.05),
  target("lora_over_full_step_time", "faster training", "<=", 0.6),
  target("lora_over_full_peak_memory", "less training memory (peak RSS)", "<=", 0.4),
  target("merge_over_copy_bandwidth", "merging runs near copy speed", ">=", 0.5),
  target("lora_over_full_eval_loss", "quality on par with full fine-tuning (eval loss within 5%; LoRA r=8 all-linear + head r=32)", "<=", 1.05),
  target("tfjs_over_onnx_lora_step_time", "LoRA training on ONNX Runtime at least 5× faster than on TensorFlow.js (issue 10)", ">=", 5),
  target("mixed_over_single_adapter_batch_time", "a batch whose 8 rows use 8 different adapters decodes nearly as fast as one adapter (issue 19)", "<=", 1.3),
  target(
    "tfjs_over_onnx_generation_time",
    "batched generation with an unmerged adapter on ONNX Runtime at least 3× faster than on TensorFlow.js (issue 17)",
    ">=",
    3,
  ),
];
