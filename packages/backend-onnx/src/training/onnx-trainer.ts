import type * as ort from "onnxruntime-node";
import { LowrankError } from "@lowrank/core";
import { clipGradNorm, dropoutSeed, Float32AdamW, stepLearningRate, makeBatch, SeededRandom, TrainingBatches } from "@lowrank/core/internal";
import type { Batch, BackendTrainer, EvalResult, StepLog, TrainerOptions, TrainerState, TrainingExample } from "@lowrank/core/internal";
import { maskRows, type TrainingSlot } from "./lora-plan.js";
import type { TrainedParameter } from "./training-graph.js";
import { runClassificationBatch } from "./classification-batch.js";
import { runBatch } from "./training-session.js";

/** What a trainer trains beside the slots' factors, and how. */
export interface OnnxTrainerExtras {
  /** lora_dropout: masks are drawn per step from the seed when above 0. */
  dropout?: number;
  /**
   * Checkpoint tensors trained as graph inputs, with their shapes — full fine-tuning (no slots):
   * every parameter; LoRA: PEFT's trained biases and modules_to_save. `params` holds the same arrays.
   */
  parameters?: ReadonlyMap<string, TrainedParameter>;
  /** Sequence classification: the classifier's label count (every example's `label` is checked against it). */
  numLabels?: number;
}

/** Every example's class within [0, labels): one LowrankError USAGE naming the first that is not. */
function checkLabels(examples: readonly TrainingExample[], labels: number | undefined, what: string): void {
  if (labels === undefined) return;
  const bad = examples.findIndex((e) => (e.label ?? 0) >= labels);
  if (bad >= 0)
    throw new LowrankError(
      "USAGE",
      `${what} example ${bad + 1}: \`label\` ${examples[bad]!.label} is out of range: the model classifies into ${labels} labels (0 to ${labels - 1}, config.json \`id2label\`)`,
    );
}

/**
 * Trains LoRA factors (or, full fine-tuning, every parameter of the model) held as Float32Arrays
 * with one ONNX Runtime session of the loss-and-gradients graph: the tfjs trainer's options and
 * results (core's seeded batch order, warm-up + schedule, gradient accumulation, global-norm
 * clipping, AdamW with decoupled weight decay on every trained parameter), the optimizer step in
 * plain TypeScript. Causal LM (mean loss per predicted token) or, on an encoder's graph, sequence
 * classification (mean loss per example, accuracy in evaluation).
 */
export class OnnxLoraTrainer implements BackendTrainer {
  readonly totalSteps: number;
  private readonly optimizer: Float32AdamW;
  private readonly batches: TrainingBatches;
  private readonly accumulation: number;
  private step = 0;

  private readonly dropout: number;
  private readonly parameters?: ReadonlyMap<string, TrainedParameter>;
  private readonly numLabels?: number;

  /**
   * @param params the trained values by adapter key (or checkpoint name), updated in place.
   * @param options `task` must be the graph's (an encoder's graph computes the classification loss).
   * @throws LowrankError USAGE for an example whose `label` the classifier lacks, or nothing to train.
   */
  constructor(
    private readonly session: ort.InferenceSession,
    private readonly slots: readonly TrainingSlot[],
    readonly params: Map<string, Float32Array>,
    examples: readonly TrainingExample[],
    private readonly options: TrainerOptions,
    extras: OnnxTrainerExtras = {},
  ) {
    this.dropout = extras.dropout ?? 0;
    this.parameters = extras.parameters;
    this.numLabels = options.task === "seq-cls" ? extras.numLabels : undefined;
    checkLabels(examples, this.numLabels, "training");
    if (params.size === 0) throw new LowrankError("USAGE", "nothing to train: the adapter has no trainable parameters");
    if (!(options.batchSize >= 1)) throw new LowrankError("USAGE", `--batch-size must be at least 1, got ${options.batchSize}`);
    this.batches = new TrainingBatches(examples, options);
    this.accumulation = this.batches.accumulation;
    this.totalSteps = this.batches.totalSteps;
    this.optimizer = new Float32AdamW(params, { weightDecay: options.weightDecay ?? 0 });
  }

  get currentStep(): number {
    return this.step;
  }

  /** Inverted-dropout masks [tokens (+ the slot's extra rows), in] per module (0 or 1/(1−p)), seeded by the micro-batch; all ones to evaluate. */
  private masks(tokens: number, seed: number | undefined): Map<string, Float32Array> | undefined {
    if (this.dropout <= 0) return undefined;
    const masks = new Map<string, Float32Array>();
    const keep = 1 / (1 - this.dropout);
    this.slots.forEach((slot, i) => {
      if (slot.kind === "embedding") return; // no dropout on an embedding's LoRA path (PEFT)
      const mask = new Float32Array(maskRows(slot, tokens) * slot.inFeatures);
      if (seed === undefined) mask.fill(1);
      else {
        const rng = new SeededRandom((seed * 1_000_003 + i + 1) % 2_147_483_647);
        for (let j = 0; j < mask.length; j++) mask[j] = rng.next() < this.dropout ? 0 : keep;
      }
      masks.set(slot.module, mask);
    });
    return masks;
  }

  /** One batch through the graph: its mean loss, the loss's denominator (predicted tokens, or rows), correct rows and gradients. */
  private async run(batch: Batch, masks: Map<string, Float32Array> | undefined, gradients: boolean) {
    const feeds = {
      slots: this.slots,
      ids: batch.ids,
      factors: this.params,
      masks,
      parameters: this.parameters,
      segments: batch.segments,
      positions: batch.positions,
      gradients,
    };
    if (this.options.task === "seq-cls") {
      const r = await runClassificationBatch(this.session, { ...feeds, mask: batch.mask, classes: batch.classes });
      return { loss: r.loss, weight: r.rows, correct: r.correct, grads: r.grads };
    }
    const r = await runBatch(this.session, { ...feeds, labels: batch.labels });
    return { loss: r.loss, weight: r.predicted, correct: 0, grads: r.grads };
  }

  /** Runs one optimizer step (all its micro-batches) and returns its log. */
  async trainStep(): Promise<StepLog> {
    const started = performance.now();
    let sums: Map<string, Float32Array> | undefined;
    let lossTotal = 0;
    const { batches, tokens, epoch } = this.batches.step(this.step);
    for (const { index, batch } of batches) {
      const masks = this.masks(batch.ids.length * batch.ids[0]!.length, dropoutSeed(this.options.seed, index));
      const result = await this.run(batch, masks, true);
      // As the tfjs trainer: each micro-batch's loss (and so its gradient) divided by the accumulation.
      lossTotal += Math.fround(result.loss / this.accumulation);
      if (this.accumulation > 1) for (const g of result.grads.values()) for (let i = 0; i < g.length; i++) g[i]! /= this.accumulation;
      if (!sums) sums = result.grads;
      else
        for (const [name, g] of result.grads) {
          const total = sums.get(name)!;
          for (let i = 0; i < g.length; i++) total[i]! += g[i]!;
        }
    }
    const grads = sums!;
    const gradNorm = clipGradNorm(grads, this.options.maxGradNorm);
    const learningRate = stepLearningRate(this.options, this.step, this.totalSteps);
    this.optimizer.apply(grads, learningRate);
    this.step += 1;
    const seconds = (performance.now() - started) / 1000;
    return { step: this.step, epoch, loss: lossTotal, learningRate, gradNorm, tokens, tokensPerSecond: tokens / seconds, seconds };
  }

  /**
   * Mean loss per predicted token (per example for classification, with the accuracy) and perplexity.
   * ONNX Runtime runs a graph whole, so this uses the training session (its gradients are dropped)
   * rather than a second copy of the weights.
   * @throws LowrankError USAGE for an example whose `label` the classifier lacks.
   */
  async evaluate(examples: readonly TrainingExample[], batchSize = this.options.batchSize): Promise<EvalResult> {
    checkLabels(examples, this.numLabels, "evaluation");
    let weighted = 0;
    let weight = 0;
    let correct = 0;
    for (let start = 0; start < examples.length; start += batchSize) {
      const batch = makeBatch(examples.slice(start, start + batchSize), this.options.padTokenId);
      const masks = this.masks(batch.ids.length * batch.ids[0]!.length, undefined);
      const result = await this.run(batch, masks, false);
      weighted += result.loss * result.weight;
      weight += result.weight;
      correct += result.correct;
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

  /** Continues from a saved state; `params` must already hold the saved values. */
  setState(state: TrainerState): void {
    this.step = state.step;
    this.optimizer.setState(state.optimizer);
  }
}
