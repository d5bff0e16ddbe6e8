import { savedParameter, type TrainingStepper } from "@lowrank/core/internal";
import type { OnnxFullTraining } from "./create-onnx-full-training.js";
import type { OnnxLoraTraining } from "./create-onnx-lora-training.js";
import type { OnnxLoraTrainer } from "./onnx-trainer.js";

/**
 * The ONNX Runtime side of core's training loop: a LoRA adapter's training session and its
 * trainer. Each step's `seconds` is the wall time of that optimizer step (graph runs and the AdamW update).
 * @returns a stepper whose `release` releases the session.
 */
export function onnxStepper(training: OnnxLoraTraining, trainer: OnnxLoraTrainer): TrainingStepper {
  return {
    kind: "lora",
    device: training.provider,
    trainer,
    trainableParameters: training.trainableParameters,
    totalParameters: training.totalParameters,
    restoreWeights: (checkpoint) => {
      for (const [name, values] of trainer.params) values.set(savedParameter(checkpoint, name, values.length));
    },
    // Checkpoints keep PiSSA / OLoRA adapters as trained (to resume); the final adapter fits the original base.
    weights: ({ checkpoint }) => ({ kind: "lora", adapter: training.adapter({ raw: checkpoint }) }),
    release: () => training.release(),
  };
}

/**
 * The ONNX Runtime side of core's training loop for full fine-tuning: every parameter of the model,
 * written (and restored) under the checkpoint's names as float32.
 * @returns a stepper of kind "full" whose `release` releases the session.
 */
export function onnxFullStepper(training: OnnxFullTraining, trainer: OnnxLoraTrainer): TrainingStepper {
  return {
    kind: "full",
    device: training.provider,
    trainer,
    trainableParameters: training.trainableParameters,
    totalParameters: training.totalParameters,
    restoreWeights: (checkpoint) => {
      for (const [name, p] of training.parameters) p.values.set(savedParameter(checkpoint, name, p.shape));
    },
    weights: () => ({ kind: "full", tensors: training.tensors() }),
    release: () => training.release(),
  };
}
