import type * as ort from "onnxruntime-node";
import { LowrankError } from "@lowrank/core";
import { clipGradNorm, dropoutSeed, Float32AdamW, stepLearningRate, makeBatch, SeededRandom, TrainingBatches } from "@lowrank/core/internal";
import type { BackendTrainer, EvalResult, StepLog, TrainerOptions, TrainerState, TrainingExample } from "@lowrank/core/internal";
import type { TrainingSlot } from "./lora-plan.js";
import type { TrainedParameter } from "./training-graph.js";
import { runBatch } from "./training-session.js";

/**
 * Trains LoRA factors (or, full fine-tuning, every parameter of the model) held as Float32Arrays
 * with one ONNX Runtime session of the loss-and-gradients graph: the tfjs trainer's options and
 * results (core's seeded batch order, warm-up + schedule, gradient accumulation, global-norm
 * clipping, AdamW with decoupled weight decay on every trained parameter), the optimizer step in
 * plain TypeScript. Causal LM only.
 */
export class OnnxLoraTrainer implements BackendTrainer {
  readonly totalSteps: number;
  private readonly optimizer: Float32AdamW;
  private readonly batches: TrainingBatches;
  private readonly accumulation: number;
  private step = 0;

  /**
   * @param params the trained factors by adapter key, updated in place.
   * @param dropout lora_dropout: masks are drawn per step from the seed when above 0.
   * @param parameters checkpoint tensors trained as graph inputs, with their shapes — full fine-tuning (no
   *   slots): every parameter; LoRA: PEFT's trained biases. `params` holds the same arrays.
   */
  constructor(
    private readonly session: ort.InferenceSession,
    private readonly slots: readonly TrainingSlot[],
    readonly params: Map<string, Float32Array>,
    examples: readonly TrainingExample[],
    private readonly options: TrainerOptions,
    private readonly dropout = 0,
    private readonly parameters?: ReadonlyMap<string, TrainedParameter>,
  ) {
    if (options.task !== "causal-lm")
      throw new LowrankError("USAGE", `--task ${options.task}: the onnx trainer trains causal language models only; use --backend tfjs`);
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

  /** Inverted-dropout masks [tokens, in] per module (0 or 1/(1−p)), seeded by the micro-batch; all ones to evaluate. */
  private masks(tokens: number, seed: number | undefined): Map<string, Float32Array> | undefined {
    if (this.dropout <= 0) return undefined;
    const masks = new Map<string, Float32Array>();
    const keep = 1 / (1 - this.dropout);
    this.slots.forEach((slot, i) => {
      if (slot.kind === "embedding") return; // no dropout on an embedding's LoRA path (PEFT)
      const mask = new Float32Array(tokens * slot.inFeatures);
      if (seed === undefined) mask.fill(1);
      else {
        const rng = new SeededRandom((seed * 1_000_003 + i + 1) % 2_147_483_647);
        for (let j = 0; j < mask.length; j++) mask[j] = rng.next() < this.dropout ? 0 : keep;
      }
      masks.set(slot.module, mask);
    });
    return masks;
  }

  /** Runs one optimizer step (all its micro-batches) and returns its log. */
  async trainStep(): Promise<StepLog> {
    const started = performance.now();
    let sums: Map<string, Float32Array> | undefined;
    let lossTotal = 0;
    const { batches, tokens, epoch } = this.batches.step(this.step);
    for (const { index, batch } of batches) {
      const masks = this.masks(batch.ids.length * batch.ids[0]!.length, dropoutSeed(this.options.seed, index));
      const result = await runBatch(this.session, {
        slots: this.slots,
        ids: batch.ids,
        labels: batch.labels,
        factors: this.params,
        masks,
        parameters: this.parameters,
        gradients: true,
      });
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
   * Mean loss per predicted token and perplexity. ONNX Runtime runs a graph whole, so this uses the
   * training session (its gradients are dropped) rather than a second copy of the weights.
   */
  async evaluate(examples: readonly TrainingExample[], batchSize = this.options.batchSize): Promise<EvalResult> {
    let weighted = 0;
    let weight = 0;
    for (let start = 0; start < examples.length; start += batchSize) {
      const batch = makeBatch(examples.slice(start, start + batchSize), this.options.padTokenId);
      const masks = this.masks(batch.ids.length * batch.ids[0]!.length, undefined);
      const result = await runBatch(this.session, {
        slots: this.slots,
        ids: batch.ids,
        labels: batch.labels,
        factors: this.params,
        masks,
        parameters: this.parameters,
        gradients: false,
      });
      weighted += result.loss * result.predicted;
      weight += result.predicted;
    }
    const loss = weight > 0 ? weighted / weight : NaN;
    return { loss, perplexity: Math.exp(loss), examples: examples.length };
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
