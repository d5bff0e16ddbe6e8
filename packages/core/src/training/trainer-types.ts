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
