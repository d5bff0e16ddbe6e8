import * as tf from "@tensorflow/tfjs";
import { LowrankError } from "@lowrank/core";
import { dropoutSeed, TrainingBatches } from "@lowrank/core/internal";
import type { BackendTrainer, EvalResult, StepLog, TrainerOptions, TrainerState } from "@lowrank/core/internal";
import type { Example } from "../data/read-examples.js";
import type { ForwardContext } from "../layers/lora-branch.js";
import type { ForwardInput, TfjsModel } from "../models/model.js";
import { AdamW } from "./adamw.js";
import { makeBatch, type Batch } from "./batches.js";
import { causalLmLoss, classificationLoss } from "./loss.js";
import { stepLearningRate } from "@lowrank/core/internal";
import type { TrainableSet } from "./trainable.js";

export type { TrainerOptions, StepLog, EvalResult, TrainerState };

/**
 * Trains a TrainableSet (LoRA or full) on examples: seeded batch order and dropout, AdamW with
 * decoupled weight decay, warm-up + linear/cosine schedule, gradient accumulation and global-norm
 * clipping. A step's result depends only on the seed, the step number and the state, so a run
 * resumed from a checkpoint gives the same losses as an uninterrupted one.
 */
export class Trainer implements BackendTrainer {
  readonly totalSteps: number;
  private readonly optimizer: AdamW;
  private readonly batches: TrainingBatches;
  private readonly accumulation: number;
  private step = 0;

  constructor(
    private readonly model: TfjsModel,
    private readonly trainable: TrainableSet,
    examples: readonly Example[],
    private readonly options: TrainerOptions,
  ) {
    if (trainable.variables.size === 0) throw new LowrankError("USAGE", "nothing to train: the adapter has no trainable parameters");
    if (!(options.batchSize >= 1)) throw new LowrankError("USAGE", `--batch-size must be at least 1, got ${options.batchSize}`);
    this.batches = new TrainingBatches(examples, options);
    this.accumulation = this.batches.accumulation;
    this.totalSteps = this.batches.totalSteps;
    this.optimizer = new AdamW(trainable.variables, { weightDecay: options.weightDecay ?? 0 });
  }

  get currentStep(): number {
    return this.step;
  }

  private lossOf(batch: Batch, ctx: ForwardContext): tf.Scalar {
    const out = this.model.forward(forwardInput(batch), ctx);
    return this.options.task === "causal-lm" ? causalLmLoss(out.logits, batch.labels) : classificationLoss(out.logits, batch.classes);
  }

  /** Runs one optimizer step (all its micro-batches) and returns its log. */
  trainStep(): StepLog {
    const started = performance.now();
    const names = [...this.trainable.variables.keys()];
    const byVariableName = new Map(names.map((n) => [this.trainable.variables.get(n)!.name, n]));
    const varList = [...this.trainable.variables.values()];
    let sums: Map<string, tf.Tensor> | undefined;
    let lossTotal = 0;
    const { batches, tokens, epoch } = this.batches.step(this.step);
    for (const { index, batch } of batches) {
      const ctx: ForwardContext = { training: true, seed: dropoutSeed(this.options.seed, index), dropoutCalls: 0 };
      const { value, grads } = tf.variableGrads(() => tf.div(this.lossOf(batch, ctx), this.accumulation) as tf.Scalar, varList);
      lossTotal += value.dataSync()[0]!;
      value.dispose();
      if (!sums) {
        sums = new Map(Object.entries(grads).map(([k, g]) => [byVariableName.get(k)!, g]));
      } else {
        for (const [k, g] of Object.entries(grads)) {
          const name = byVariableName.get(k)!;
          const previous = sums.get(name)!;
          sums.set(name, tf.add(previous, g));
          previous.dispose();
          g.dispose();
        }
      }
    }
    const grads = sums!;
    const gradNorm = tf.tidy(() => Math.sqrt(tf.addN([...grads.values()].map((g) => tf.sum(tf.square(g)))).dataSync()[0]!));
    const limit = this.options.maxGradNorm ?? 0;
    if (limit > 0 && gradNorm > limit) {
      const factor = limit / (gradNorm + 1e-6);
      for (const [name, g] of grads) {
        grads.set(name, tf.mul(g, factor));
        g.dispose();
      }
    }
    const learningRate = stepLearningRate(this.options, this.step, this.totalSteps);
    this.optimizer.apply(grads, learningRate);
    for (const g of grads.values()) g.dispose();
    this.step += 1;
    const seconds = (performance.now() - started) / 1000;
    return { step: this.step, epoch, loss: lossTotal, learningRate, gradNorm, tokens, tokensPerSecond: tokens / seconds, seconds };
  }

  /** Mean loss (per token or per example), perplexity and, for classification, accuracy. */
  evaluate(examples: readonly Example[], batchSize = this.options.batchSize): EvalResult {
    let weighted = 0;
    let weight = 0;
    let correct = 0;
    for (let start = 0; start < examples.length; start += batchSize) {
      const batch = makeBatch(examples.slice(start, start + batchSize), this.options.padTokenId);
      tf.tidy(() => {
        const ctx: ForwardContext = { training: false, seed: 0, dropoutCalls: 0 };
        const out = this.model.forward(forwardInput(batch), ctx);
        if (this.options.task === "causal-lm") {
          const predicted = batch.labels.reduce((n, row) => n + row.slice(1).filter((l) => l >= 0).length, 0);
          weighted += causalLmLoss(out.logits, batch.labels).dataSync()[0]! * predicted;
          weight += predicted;
        } else {
          weighted += classificationLoss(out.logits, batch.classes).dataSync()[0]! * batch.classes.length;
          weight += batch.classes.length;
          const argmax = tf.argMax(out.logits, 1).dataSync();
          batch.classes.forEach((c, i) => (correct += argmax[i] === c ? 1 : 0));
        }
      });
    }
    const loss = weight > 0 ? weighted / weight : NaN;
    return {
      loss,
      perplexity: Math.exp(loss),
      examples: examples.length,
      ...(this.options.task === "seq-cls" ? { accuracy: correct / Math.max(1, examples.length) } : {}),
    };
  }

  getState(): TrainerState {
    return { step: this.step, optimizer: this.optimizer.getState() };
  }

  /** Continues from a saved state; the trainable variables must already hold the saved values. */
  setState(state: TrainerState): void {
    this.step = state.step;
    this.optimizer.setState(state.optimizer);
  }

  dispose(): void {
    this.optimizer.dispose();
  }
}

/** A batch as the model's input: ids, padding mask and, for packed sequences, segments and positions. */
function forwardInput(batch: Batch): ForwardInput {
  return {
    inputIds: tf.tensor2d(batch.ids, undefined, "int32"),
    attentionMask: batch.mask,
    ...(batch.segments ? { segments: batch.segments, positionIds: batch.positions } : {}),
  };
}
