import type { LoraAdapter } from "../adapter/lora-adapter.js";
import type { Logger } from "../logger.js";
import type { MergeCheckpointResult } from "../merge/merge-checkpoint.js";

/** What a backend can do. */
export type BackendCapability = "train" | "infer" | "merge";

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

export interface MergeParams {
  baseDir: string;
  adapter: LoraAdapter;
  outDir: string;
  safe?: boolean;
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
  predict?(params: PredictParams): Promise<PredictResult>;
  merge?(params: MergeParams): Promise<MergeCheckpointResult>;
  dispose?(): Promise<void>;
}

/** Makes a backend; called lazily, once, by the registry. */
export type BackendFactory = () => LowrankBackend | Promise<LowrankBackend>;
