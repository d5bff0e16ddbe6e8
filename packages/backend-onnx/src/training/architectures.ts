import { LowrankError } from "@lowrank/core";
import { DEBERTA_TRAINING_MODEL_TYPES, debertaTraining } from "./deberta-training-graph.js";
import { ENCODER_TRAINING_MODEL_TYPES, encoderTraining } from "./encoder-training-graph.js";
import { GPT2_TRAINING } from "./gpt2-training-graph.js";
import { llamaTraining } from "./llama-training-graph.js";
import type { TrainingArchitecture } from "./training-graph.js";

/** The builder of a model type's training architecture from its config.json. */
type ArchitectureFactory = (modelType: string, config: Record<string, unknown>, label: string) => TrainingArchitecture;

/** The ONNX trainer's architectures by config.json `model_type`. */
const ARCHITECTURES: Readonly<Record<string, ArchitectureFactory>> = {
  gpt2: () => GPT2_TRAINING,
  llama: llamaTraining,
  mistral: llamaTraining,
  qwen2: llamaTraining,
  phi3: llamaTraining,
  gemma: llamaTraining,
  gemma2: llamaTraining,
  bert: encoderTraining,
  roberta: encoderTraining,
  "xlm-roberta": encoderTraining,
  "deberta-v2": debertaTraining,
};

/** The model types the ONNX trainer trains for sequence classification (the encoders). */
const SEQ_CLS_MODEL_TYPES: readonly string[] = [...ENCODER_TRAINING_MODEL_TYPES, ...DEBERTA_TRAINING_MODEL_TYPES];

export const ONNX_TRAINABLE_MODEL_TYPES = Object.keys(ARCHITECTURES);

/**
 * The training-graph builder for a checkpoint's config.
 * @throws LowrankError CHECKPOINT_INVALID naming the folder and its model_type when unsupported, or
 *   the config field the model type's builder refuses.
 */
export function trainingArchitecture(config: Record<string, unknown>, label: string): TrainingArchitecture {
  const type = typeof config.model_type === "string" ? config.model_type : "";
  const found = ARCHITECTURES[type];
  if (!found)
    throw new LowrankError(
      "CHECKPOINT_INVALID",
      `${label}: model_type ${JSON.stringify(type)} is not supported by the onnx trainer (supported: ${ONNX_TRAINABLE_MODEL_TYPES.join(", ")}); use ` +
        `--backend tfjs`,
    );
  return found(type, config, label);
}

/** The task a model trains: the encoders sequence classification, the decoders causal language modelling. */
export type TrainingTask = "causal-lm" | "seq-cls";

/**
 * The task of a run on a checkpoint: `requested` (`--task`) or, without it, the model type's.
 * @throws LowrankError USAGE when `--task causal-lm` is asked of an encoder (no LM head), TARGET_UNSUPPORTED
 *   when `--task seq-cls` is asked of a decoder (the tfjs backend trains those).
 */
export function trainingTask(config: Record<string, unknown>, requested: TrainingTask | undefined, label: string): TrainingTask {
  const type = typeof config.model_type === "string" ? config.model_type : "";
  const encoder = SEQ_CLS_MODEL_TYPES.includes(type);
  const task = requested ?? (encoder ? "seq-cls" : "causal-lm");
  if (task === "causal-lm" && encoder)
    throw new LowrankError("USAGE", `--task causal-lm does not fit ${label}, a ${type} sequence classifier; use --task seq-cls`);
  if (task === "seq-cls" && !encoder)
    throw new LowrankError(
      "TARGET_UNSUPPORTED",
      `${label}: the onnx trainer does not support --task seq-cls on model_type ${JSON.stringify(type)} yet ` +
        `(only on ${SEQ_CLS_MODEL_TYPES.join(", ")}); use --backend tfjs`,
    );
  return task;
}
