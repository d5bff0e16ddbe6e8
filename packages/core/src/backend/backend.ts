import type { LoraAdapter } from "../adapter/lora-adapter.js";
import type { Logger } from "../logger.js";
import type { MergeCheckpointResult } from "../merge/merge-checkpoint.js";
import type { LoraConfigInput } from "../config/lora-config.js";

/** What a backend can do. */
export type BackendCapability = "train" | "infer" | "merge" | "generate";

/** What `init` found: the device it will run on and, when it fell back, why. */
export interface BackendInitResult {
  device: string;
  note?: string;
}

export interface PredictParams {
  /** A Hugging Face model folder (or, for some backends, a model file). */
  model: string;
  adapter?: LoraAdapter;
  /** Merge the adapter into the weights instead of running it beside them. */
  merge?: boolean;
  inputIds: number[][];
  attentionMask?: number[][];
}

export interface FloatArray {
  data: Float32Array;
  shape: number[];
}

export interface PredictResult {
  logits: FloatArray;
  lastHiddenState?: FloatArray;
}

/** A training run: LoRA (the `lora` config) or, with `full`, every parameter. */
export interface TrainParams {
  model: string;
  /**
   * Text (one example a line) or JSONL whose lines hold `text`, `input_ids`, `prompt` + `completion`
   * (loss on the completion) or `messages` (the model's chat template; loss on the assistant
   * messages), and `label` for seq-cls. See core's readExamples.
   */
  data: string;
  out: string;
  task?: "causal-lm" | "seq-cls";
  /** The adapter to create (PEFT's fields); ignored with `full`. */
  lora?: LoraConfigInput;
  full?: boolean;
  steps?: number;
  epochs?: number;
  learningRate?: number;
  batchSize?: number;
  gradientAccumulation?: number;
  seqLen?: number;
  warmupSteps?: number;
  schedule?: "constant" | "linear" | "cosine";
  weightDecay?: number;
  maxGradNorm?: number;
  seed?: number;
  evalData?: string;
  /** Evaluate every N steps (and at the end) when eval data is given. */
  evalEvery?: number;
  /** Write a resumable checkpoint to `out/checkpoint-N` every N steps. */
  saveEvery?: number;
  /** A checkpoint folder to continue from. */
  resume?: string;
  /**
   * Pack short causal-LM examples into sequences of `seqLen`, attention kept within each example
   * (core's packExamples).
   */
  packing?: boolean;
  /**
   * Gradient checkpointing (transformers' `gradient_checkpointing`): recompute each block's
   * activations in the backward pass instead of holding them from the forward pass — less memory
   * for about a third more compute. Undefined: the backend decides (ONNX Runtime turns it on when the
   * activations would not fit in half the free memory; tfjs holds them always).
   */
  gradientCheckpointing?: boolean;
}

/** Progress of a training run, in order: start, steps (with evals and checkpoints between), done. */
export type TrainEvent =
  | { type: "start"; totalSteps: number; startStep: number; trainableParameters: number; totalParameters: number; examples: number; device: string }
  | {
      type: "step";
      step: number;
      epoch: number;
      loss: number;
      learningRate: number;
      gradNorm: number;
      tokens: number;
      tokensPerSecond: number;
      seconds: number;
    }
  | { type: "eval"; step: number; loss: number; perplexity: number; accuracy?: number }
  | { type: "checkpoint"; step: number; dir: string }
  | { type: "done"; out: string; steps: number; seconds: number; finalLoss: number };

export interface GenerateParams {
  model: string;
  adapter?: LoraAdapter;
  merge?: boolean;
  /** Text, tokenised with the model's tokenizer, or token ids. */
  prompt?: string;
  promptIds?: number[];
  maxNewTokens: number;
  /** 0 or undefined: greedy. */
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
  /** Reuse keys/values between steps (default true). */
  useCache?: boolean;
}

export interface GenerateResult {
  ids: number[];
  /** The new tokens decoded, when the model has a tokenizer. */
  text?: string;
}

export interface MergeParams {
  baseDir: string;
  adapter: LoraAdapter;
  outDir: string;
  safe?: boolean;
}

/** A job to place on a backend: what is asked and the model it is for (left out: the capability in general). */
export interface BackendJob {
  capability: BackendCapability;
  model?: string;
  /** For "train": the run's parameters (adapter type, task, full fine-tuning). */
  train?: TrainParams;
}

/**
 * The contract a lowrank backend implements. Operations are optional; `capabilities` says which
 * exist. A backend never re-implements LoRA math: it calls core's, or expresses the same formula
 * in its own ops and is tested against core.
 */
export interface LowrankBackend {
  readonly name: string;
  readonly capabilities: readonly BackendCapability[];
  /** Devices the backend may use, best first (e.g. ["cuda", "cpu"]). */
  readonly devices: readonly string[];
  /** Prepares the backend once; throws when it cannot run here (the registry then tries the next). */
  init(options: { logger: Logger }): Promise<BackendInitResult>;
  /**
   * Why this backend would not take `job` when no backend is named (an architecture it cannot
   * build, say), or undefined when it would. The registry then offers the job to the next backend.
   */
  declineReason?(job: BackendJob): Promise<string | undefined>;
  predict?(params: PredictParams): Promise<PredictResult>;
  merge?(params: MergeParams): Promise<MergeCheckpointResult>;
  generate?(params: GenerateParams): Promise<GenerateResult>;
  /** Trains and saves; progress is an async stream of events that the caller drains. */
  train?(params: TrainParams): AsyncGenerator<TrainEvent>;
  dispose?(): Promise<void>;
}

/** Makes a backend; called lazily, once, by the registry. */
export type BackendFactory = () => LowrankBackend | Promise<LowrankBackend>;
