import { LowrankError } from "@lowrank/core";
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
};

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
