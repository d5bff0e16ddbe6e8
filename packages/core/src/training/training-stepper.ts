import type { LoraAdapter } from "../adapter/lora-adapter.js";
import type { TrainParams } from "../backend/backend.js";
import type { Tensor } from "../formats/safetensors/dtype.js";
import type { TrainingExample } from "./batches.js";
import type { ExampleTokenizer } from "./read-examples.js";
import type { EvalResult, StepLog, TrainerState } from "./trainer-types.js";

/** The parameters a run trains, ready to write: a PEFT adapter, or (full fine-tuning) every tensor of the model. */
export type TrainedWeights = { kind: "lora"; adapter: LoraAdapter } | { kind: "full"; tensors: Map<string, Tensor> };

/** A checkpoint's saved parameters, as core read them for a stepper to continue from. */
export interface CheckpointWeights {
  /** The checkpoint folder (for messages). */
  dir: string;
  /** The saved parameters, by the names the run trains them under. */
  weights: ReadonlyMap<string, Tensor>;
}

/**
 * A backend's trainer: the optimizer loop over its trained parameters (seeded batch order and
 * dropout, schedule, accumulation, clipping, AdamW). Each backend's trainer class implements it.
 */
export interface BackendTrainer {
  /** Optimizer steps of the whole run. */
  readonly totalSteps: number;
  /** Optimizer steps done so far (after `setState`, the checkpoint's step). */
  readonly currentStep: number;
  /**
   * Runs the next optimizer step (all its micro-batches). Its result depends only on the seed, the
   * step number and the state, so a resumed run repeats an uninterrupted one.
   * @returns the step's log; a non-finite loss or gradient norm is returned, not thrown (core stops the run).
   */
  trainStep(): StepLog | Promise<StepLog>;
  /** @returns the mean loss, perplexity (and, for classification, accuracy) on `examples`, without training. */
  evaluate(examples: readonly TrainingExample[]): EvalResult | Promise<EvalResult>;
  /** @returns the step and optimizer state, for a checkpoint's trainer_state.json and optimizer.safetensors. */
  getState(): TrainerState;
  /** Continues from a checkpoint's state; the trained parameters must already hold its weights. */
  setState(state: TrainerState): void;
}

/**
 * The backend-specific part of one prepared training run. Core's runTraining drives it: reading
 * data, resuming, the event order, evaluation and save cadence, checkpoint folders, the divergence
 * check and the files written all live in core; a stepper trains, evaluates and hands over its
 * parameters and state.
 */
export interface TrainingStepper {
  /** What the run trains: a LoRA adapter or every parameter (checkpoints of the other kind are refused). */
  readonly kind: "lora" | "full";
  /** The device it runs on, as the start event and training_summary.json report it. */
  readonly device: string;
  /** Elements of the trained parameters. */
  readonly trainableParameters: number;
  /** Elements of all the model's parameters. */
  readonly totalParameters: number;
  /** Runs the optimizer steps and evaluations, and holds the step and optimizer state. */
  readonly trainer: BackendTrainer;
  /**
   * Puts a checkpoint's weights into the trained parameters (core then gives the trainer its state).
   * @throws LowrankError USAGE when a trained parameter is missing from the checkpoint or has another shape.
   */
  restoreWeights(checkpoint: CheckpointWeights): void;
  /**
   * @returns the trained parameters with their current values. With `checkpoint`, as trained (PiSSA /
   * OLoRA adapters not converted to fit the original base), so that a resumed run continues them.
   */
  weights(options: { checkpoint: boolean }): TrainedWeights;
  /** Frees the model, sessions and tensors. Called once, when the run ends or fails. */
  release(): Promise<void>;
}

/** How a backend's model reads training data (core's readExamples options, but `seqLen`, which the run gives). */
export interface TrainingDataFormat {
  task: "causal-lm" | "seq-cls";
  vocabSize: number;
  /** Appended to causal-LM `text` and `completion` examples (unless they end with it). */
  eosTokenId?: number;
  /** The tokenizer for text lines of `file` (per file, so that its errors can name it); undefined: text is refused. */
  tokenizerFor?(file: string): ExampleTokenizer | undefined;
}

/** What core hands a backend to prepare a run. */
export interface TrainingRun {
  params: TrainParams;
  /** `params.seed`, or 42. */
  seed: number;
  /**
   * Reads `params.data` (and `params.evalData`, which core keeps for evaluation) with core's
   * readExamples. Call it once, after loading the model and tokenizer, before building the trainer.
   * @returns the training examples.
   * @throws LowrankError USAGE naming the file and line.
   */
  readData(format: TrainingDataFormat): Promise<TrainingExample[]>;
}

/**
 * A backend's preparation of a run: loads the model (and tokenizer), reads the data through
 * `run.readData`, creates the trained parameters and the trainer.
 * @returns the stepper. When it throws, it has freed what it loaded.
 */
export type PrepareTrainingStepper = (run: TrainingRun) => Promise<TrainingStepper>;
