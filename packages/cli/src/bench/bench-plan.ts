import { GPT2_SMALL, type Gpt2Shape } from "./synthetic-model.js";

/** Sizes and repeat counts of one suite run: `--quick` for a CI smoke run, the full run for the docs. */
export interface BenchPlan {
  quick: boolean;
  /** The realistic-size model (random weights); the headline ratios come from it in a full run. */
  large: { label: string; shape: Gpt2Shape };
  merge: { repeats: number };
  /** The checkpoint whose merge must stay in bounded memory (issue 8: 3 GB under 1 GB of RSS). */
  memory: { label: string; shape: Gpt2Shape };
  training: { model: "embedded" | "large"; batchSize: number; seqLen: number; warmup: number; steps: number }[];
  latency: { model: "embedded" | "large"; batches: number[]; seqLen: number; rounds: number; warmup: number }[];
  quality: { steps: number; batchSize: number; evalMrs: number; maxNewTokens: number; loraLearningRate: number; fullLearningRate: number };
}

export function benchPlan(quick: boolean): BenchPlan {
  const large = { label: "GPT-2 small shape (12 × 768, vocab 50257, random weights)", shape: GPT2_SMALL };
  if (quick) {
    return {
      quick, large,
      merge: { repeats: 3 },
      memory: { label: "GPT-2-shaped 6 × 1024, vocab 8192 (random weights)", shape: { layers: 6, hidden: 1024, heads: 16, vocab: 8192, positions: 1024 } },
      training: [{ model: "embedded", batchSize: 4, seqLen: 64, warmup: 1, steps: 3 }],
      latency: [{ model: "embedded", batches: [1, 8], seqLen: 32, rounds: 12, warmup: 3 }],
      quality: { steps: 12, batchSize: 8, evalMrs: 6, maxNewTokens: 24, loraLearningRate: 4e-3, fullLearningRate: 4e-4 },
    };
  }
  return {
    quick, large,
    merge: { repeats: 5 },
    memory: { label: "GPT-2 large shape (36 × 1280, vocab 50257, random weights)", shape: { layers: 36, hidden: 1280, heads: 20, vocab: 50257, positions: 1024 } },
    training: [
      { model: "embedded", batchSize: 8, seqLen: 128, warmup: 2, steps: 10 },
      { model: "large", batchSize: 4, seqLen: 128, warmup: 2, steps: 5 },
    ],
    latency: [
      { model: "embedded", batches: [1, 8], seqLen: 32, rounds: 50, warmup: 5 },
      { model: "large", batches: [1, 8], seqLen: 32, rounds: 12, warmup: 3 },
    ],
    // Learning rates: the best of a sweep at 100 steps (LoRA 2e-3 → 1.165, 4e-3 → 1.110 eval loss;
    // full fine-tuning 1e-4 → 0.944, 2e-4 → 0.855, 4e-4 → 0.784).
    quality: { steps: 100, batchSize: 16, evalMrs: 40, maxNewTokens: 48, loraLearningRate: 4e-3, fullLearningRate: 4e-4 },
  };
}
