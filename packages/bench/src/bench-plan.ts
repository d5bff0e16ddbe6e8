import type { ServingParams } from "./serving-speed.js";
import { GPT2_SMALL, type Gpt2Shape } from "./synthetic-model.js";

export type BenchModel = "embedded" | "large";

/** Sizes and repeat counts of one suite run: `--quick` for a CI smoke run, the full run for the docs. */
export interface BenchPlan {
  quick: boolean;
  /** The realistic-size model (random weights); the headline ratios come from it in a full run. */
  large: { label: string; shape: Gpt2Shape };
  merge: { repeats: number };
  /** The checkpoint whose merge must stay in bounded memory (issue 8: 3 GB under 1 GB of RSS). */
  memory: { label: string; shape: Gpt2Shape };
  /**
   * LoRA against full fine-tuning on ONNX Runtime (the training engine), one pass per step; rows with
   * `gradientCheckpointing` recompute activations in the backward pass (the others hold them).
   */
  training: { model: BenchModel; batchSize: number; seqLen: number; warmup: number; steps: number; gradientCheckpointing?: boolean }[];
  /**
   * LoRA on TensorFlow.js against the ONNX Runtime LoRA row of the same model (issue 10's ratio):
   * tfjs keeps every intermediate of a step for its gradients, so it runs the batch as micro-batches.
   */
  tfjsTraining: { model: BenchModel; batchSize: number; gradientAccumulation: number; seqLen: number; warmup: number; steps: number };
  latency: { model: BenchModel; batches: number[]; seqLen: number; rounds: number; ortRounds?: number; warmup: number }[];
  /** Batched greedy generation, ONNX Runtime against tfjs, and batch-1 decoding on ONNX Runtime (issue 17). */
  generation: { model: BenchModel; prompts: number; promptTokens: number; newTokens: number; rounds: number; warmup: number; decodeRepeats: number };
  quality: { steps: number; batchSize: number; evalMrs: number; maxNewTokens: number; loraLearningRate: number; fullLearningRate: number };
  /** Issue 19: the mixed-adapter decoding step (batch × adapters of rank r, after pastTokens) and serving by concurrency. */
  serving: Omit<ServingParams, "modelDir" | "model" | "vocab"> & { model: BenchModel };
}

export function benchPlan(quick: boolean): BenchPlan {
  const large = { label: "GPT-2 small shape (12 × 768, vocab 50257, random weights)", shape: GPT2_SMALL };
  if (quick) {
    return {
      quick,
      large,
      merge: { repeats: 3 },
      memory: { label: "GPT-2-shaped 6 × 1024, vocab 8192 (random weights)", shape: { layers: 6, hidden: 1024, heads: 16, vocab: 8192, positions: 1024 } },
      training: [
        { model: "embedded", batchSize: 4, seqLen: 64, warmup: 1, steps: 3 },
        { model: "embedded", batchSize: 4, seqLen: 64, warmup: 1, steps: 3, gradientCheckpointing: true },
      ],
      tfjsTraining: { model: "embedded", batchSize: 4, gradientAccumulation: 1, seqLen: 64, warmup: 1, steps: 3 },
      latency: [{ model: "embedded", batches: [1, 8], seqLen: 32, rounds: 12, warmup: 3 }],
      generation: { model: "embedded", prompts: 8, promptTokens: 16, newTokens: 8, rounds: 3, warmup: 1, decodeRepeats: 3 },
      quality: { steps: 12, batchSize: 8, evalMrs: 6, maxNewTokens: 24, loraLearningRate: 4e-3, fullLearningRate: 4e-4 },
      serving: {
        model: "embedded",
        adapters: 8,
        rank: 8,
        batch: 8,
        pastTokens: 32,
        rounds: 10,
        warmup: 2,
        clients: [
          { clients: 1, requestsEach: 2 },
          { clients: 4, requestsEach: 1 },
        ],
        promptTokens: 16,
        newTokens: 8,
      },
    };
  }
  return {
    quick,
    large,
    merge: { repeats: 5 },
    memory: {
      label: "GPT-2 large shape (36 × 1280, vocab 50257, random weights)",
      shape: { layers: 36, hidden: 1280, heads: 20, vocab: 50257, positions: 1024 },
    },
    // The headline training ratios come from the GPT-2-small row: 4 × 128, LoRA r=8 on c_attn.
    training: [
      { model: "embedded", batchSize: 8, seqLen: 128, warmup: 2, steps: 10 },
      { model: "large", batchSize: 4, seqLen: 128, warmup: 2, steps: 5 },
      { model: "large", batchSize: 4, seqLen: 128, warmup: 2, steps: 5, gradientCheckpointing: true },
    ],
    tfjsTraining: { model: "large", batchSize: 1, gradientAccumulation: 4, seqLen: 128, warmup: 1, steps: 3 },
    latency: [
      { model: "embedded", batches: [1, 8], seqLen: 32, rounds: 50, warmup: 5 },
      { model: "large", batches: [1, 8], seqLen: 32, rounds: 12, ortRounds: 60, warmup: 3 },
    ],
    // Issue 17: 8 prompts of 128 tokens + 32 new tokens each, greedy, r=8 on c_attn unmerged.
    generation: { model: "large", prompts: 8, promptTokens: 128, newTokens: 32, rounds: 5, warmup: 1, decodeRepeats: 5 },
    // Learning rates: the best of a sweep on the embedded base at 300 steps (see the report's quality section).
    quality: { steps: 300, batchSize: 16, evalMrs: 40, maxNewTokens: 48, loraLearningRate: 4e-3, fullLearningRate: 8e-4 },
    // Issue 19: 8 rows on 8 different r=8 adapters (c_attn) after 128 tokens; serving 64-token prompts + 32 new tokens.
    serving: {
      model: "large",
      adapters: 8,
      rank: 8,
      batch: 8,
      pastTokens: 128,
      rounds: 30,
      warmup: 5,
      clients: [
        { clients: 1, requestsEach: 8 },
        { clients: 4, requestsEach: 4 },
        { clients: 16, requestsEach: 2 },
      ],
      promptTokens: 64,
      newTokens: 32,
    },
  };
}
