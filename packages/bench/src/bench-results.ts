// The suite's result shapes, shared by the suite (run-suite.ts), the ratios (ratios.ts) and the
// report (bench-report.ts); kept apart so that none of them imports another for its types.
import type { QualityResult } from "./e2e-quality.js";
import type { FootprintRow } from "./footprint.js";
import type { DecodeRow, GenerationRow } from "./generation-speed.js";
import type { LatencyRow } from "./inference-latency.js";
import type { MergeMemory } from "./merge-memory.js";
import type { MergeThroughput } from "./merge-throughput.js";
import type { TrainingStep } from "./training-step.js";
import type { MixedStepRow, ServingRow } from "./serving-speed.js";

/** One of the targets checked against the measured ratio (`value` null when not measured). */
export interface TargetCheck {
  ratio: string;
  claim: string;
  target: string;
  value: number | null;
  met: boolean;
}

/** Everything one suite run measured: written as JSON with `--json`, rendered with `--report`. */
export interface BenchResults {
  quick: boolean;
  date: string;
  seconds: number;
  machine: Record<string, unknown>;
  versions: Record<string, unknown>;
  models: { embedded: string; large: string };
  parameters: FootprintRow[];
  /** LoRA vs full fine-tuning on ONNX Runtime; `full` is null (with the reason) where it failed. */
  training: {
    model: string;
    batch_size: number;
    gradient_accumulation: number;
    seq_len: number;
    steps_timed: number;
    /** Activations recomputed in the backward pass (gradient checkpointing) rather than held. */
    gradient_checkpointing: boolean;
    lora: TrainingStep;
    full: TrainingStep | null;
    full_error?: string;
  }[];
  /** The ONNX Runtime LoRA row of a model against the same step on tfjs (as micro-batches). */
  onnx_training: { model: string; batch_size: number; seq_len: number; onnx: TrainingStep; tfjs: TrainingStep };
  latency: LatencyRow[];
  /** Batched greedy generation with an unmerged adapter: ONNX Runtime (one batch) against tfjs. */
  generation: GenerationRow;
  /**
   * Decoding at batch 1 on ONNX Runtime, beside its physical floor: one step reads every weight, so
   * no more tokens per second than the copy bandwidth (from merge.kernel, read + written bytes) over the weight bytes.
   */
  decode: DecodeRow & { copy_bandwidth_gb_per_s: number; decode_floor_tokens_per_second: number };
  /** Issue 19: a decoding step with a different adapter per row against one adapter, and `lowrank serve` under 1 … 16 clients. */
  serving: { mixed: MixedStepRow; serving: ServingRow[] };
  merge: MergeThroughput;
  merge_memory: MergeMemory;
  quality: { model: string; data: string; results: QualityResult[] };
  ratios: Record<string, number>;
  targets: TargetCheck[];
}
