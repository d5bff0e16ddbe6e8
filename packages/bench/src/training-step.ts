import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { silentLogger, type LoraConfigInput } from "@lowrank/core";
import { selectEngine, TfjsBackend } from "@lowrank/backend-tfjs";
import { peakRssBytes, resetPeakRss, spread, type Spread } from "./stats.js";

export interface TrainingStepParams {
  model: string;
  data: string;
  mode: "lora" | "full";
  lora: LoraConfigInput;
  batchSize: number;
  /** Micro-batches per optimizer step (tfjs at sizes its 4 GB wasm heap cannot take in one pass). */
  gradientAccumulation?: number;
  seqLen: number;
  /** Recompute activations in the backward pass (false: hold them; the backend never decides here). */
  gradientCheckpointing?: boolean;
  /** The training backend: tfjs (default) or onnx. */
  backend?: "tfjs" | "onnx";
  warmup: number;
  steps: number;
}

export interface TrainingStep {
  mode: "lora" | "full";
  backend: "tfjs" | "onnx";
  engine: string;
  batch_size: number;
  gradient_accumulation: number;
  trainable_parameters: number;
  total_parameters: number;
  step_seconds: Spread;
  tokens_per_second: number;
  /**
   * The resident-set high-water mark during the training steps: reset once the model is loaded, so
   * it holds the weights, optimizer state and activations but not the loader's transient copies.
   */
  peak_rss_bytes: number;
  /** The high-water mark of the whole process, loading included (run each mode in a process of its own). */
  process_peak_rss_bytes: number;
  /** The peak of live tensor bytes during the steps (tf.profile). */
  peak_tensor_bytes: number;
}

/**
 * Times LoRA or full fine-tuning steps on the tfjs backend and records peak memory. Meant for a
 * process of its own, so that the RSS high-water mark belongs to this mode alone.
 */
export async function measureTrainingStep(params: TrainingStepParams): Promise<TrainingStep> {
  const engine = params.backend === "onnx" ? { engine: "onnxruntime" } : await selectEngine();
  const backend = params.backend === "onnx" ? new (await import("@lowrank/backend-onnx")).OnnxBackend() : new TfjsBackend();
  const device = (await backend.init({ logger: silentLogger })).device;
  const out = await mkdtemp(path.join(os.tmpdir(), `lowrank-bench-${params.mode}-`));
  const steps: { seconds: number; tokens: number }[] = [];
  let start: { trainableParameters: number; totalParameters: number } | undefined;
  let loadPeak = 0;
  try {
    const profile = await tf.profile(async () => {
      for await (const event of backend.train({
        model: params.model,
        data: params.data,
        out,
        steps: params.warmup + params.steps,
        batchSize: params.batchSize,
        gradientAccumulation: params.gradientAccumulation,
        seqLen: params.seqLen,
        learningRate: 1e-4,
        full: params.mode === "full",
        lora: params.lora,
        seed: 1,
        maxGradNorm: 1,
        gradientCheckpointing: params.gradientCheckpointing ?? false,
      })) {
        if (event.type === "start") {
          start = event;
          loadPeak = await peakRssBytes();
          if (!(await resetPeakRss())) loadPeak = 0;
        }
        if (event.type === "step" && event.step > params.warmup) steps.push(event);
      }
    });
    if (!start || steps.length === 0) throw new Error(`bench: the ${params.mode} run reported no steps`);
    return {
      mode: params.mode,
      backend: params.backend ?? "tfjs",
      engine: params.backend === "onnx" ? `onnxruntime (${device})` : engine.engine,
      batch_size: params.batchSize,
      gradient_accumulation: params.gradientAccumulation ?? 1,
      trainable_parameters: start.trainableParameters,
      total_parameters: start.totalParameters,
      step_seconds: spread(steps.map((s) => s.seconds)),
      tokens_per_second: steps.reduce((n, s) => n + s.tokens, 0) / steps.reduce((n, s) => n + s.seconds, 0),
      peak_rss_bytes: await peakRssBytes(),
      peak_tensor_bytes: profile.peakBytes,
      process_peak_rss_bytes: Math.max(loadPeak, await peakRssBytes()),
    };
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}
