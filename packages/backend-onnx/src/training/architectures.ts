import { LowrankError } from "@lowrank/core";
import { GPT2_TRAINING } from "./gpt2-training-graph.js";
import { LLAMA_TRAINING } from "./llama-training-graph.js";
import type { TrainingArchitecture } from "./training-graph.js";

/** The ONNX trainer's architectures by config.json `model_type`. */
const ARCHITECTURES: Readonly<Record<string, TrainingArchitecture>> = {
  gpt2: GPT2_TRAINING,
  llama: LLAMA_TRAINING,
  mistral: LLAMA_TRAINING,
  qwen2: LLAMA_TRAINING,
};

export const ONNX_TRAINABLE_MODEL_TYPES = Object.keys(ARCHITECTURES);

/**
 * The training-graph builder for a checkpoint's config.
 * @throws LowrankError CHECKPOINT_INVALID naming the folder and its model_type when unsupported.
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
  return found;
}
