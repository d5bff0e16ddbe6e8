import type { TrainParams } from "../backend/backend.js";
import type { AdamWState } from "./adamw.js";
import type { ScheduleName } from "./schedule.js";

/** A trainer's options; every backend's trainer takes the same ones. */
export interface TrainerOptions {
  task: "causal-lm" | "seq-cls";
  /** Optimizer steps; when absent, `epochs` (default 1) over the data. */
  steps?: number;
  epochs?: number;
  learningRate: number;
  batchSize: number;
  gradientAccumulation?: number;
  weightDecay?: number;
  warmupSteps?: number;
  schedule?: ScheduleName;
  /** Clip the global gradient norm to this (0 or undefined: no clipping). */
  maxGradNorm?: number;
  seed: number;
  padTokenId: number;
}

/**
 * A training run's options from the backend-neutral TrainParams, with every backend's defaults:
 * learning rate 2e-4 (5e-5 for full fine-tuning), batch 8, linear schedule, no warm-up or weight
 * decay, gradient clipping at 1.
 */
export function trainerOptionsFor(params: TrainParams, run: { task: TrainerOptions["task"]; seed: number; padTokenId: number }): TrainerOptions {
  return {
    task: run.task,
    steps: params.steps,
    epochs: params.epochs,
    learningRate: params.learningRate ?? (params.full ? 5e-5 : 2e-4),
    batchSize: params.batchSize ?? 8,
    gradientAccumulation: params.gradientAccumulation,
    weightDecay: params.weightDecay ?? 0,
    warmupSteps: params.warmupSteps ?? 0,
    schedule: params.schedule ?? "linear",
    maxGradNorm: params.maxGradNorm ?? 1,
    seed: run.seed,
    padTokenId: run.padTokenId,
  };
}

/** What one optimizer step did. */
export interface StepLog {
  step: number;
  epoch: number;
  loss: number;
  learningRate: number;
  gradNorm: number;
  tokens: number;
  tokensPerSecond: number;
  seconds: number;
}

export interface EvalResult {
  loss: number;
  perplexity: number;
  /** Sequence classification only. */
  accuracy?: number;
  examples: number;
}

/** Everything needed to continue a run exactly where it stopped. */
export interface TrainerState {
  step: number;
  optimizer: AdamWState;
}
