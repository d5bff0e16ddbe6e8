import * as tf from "@tensorflow/tfjs";
import { savedParameter, type TrainingStepper } from "@lowrank/core/internal";
import type { TfjsModel } from "../models/model.js";
import type { FullTraining, LoraTraining } from "./trainable.js";
import type { Trainer } from "./trainer.js";

/**
 * The TensorFlow.js side of core's training loop: a model, its trained parameters (LoRA or full)
 * and their Trainer.
 * @returns a stepper whose `release` disposes the trainer and the model's tensors.
 */
export function tfjsStepper(run: { model: TfjsModel; trainable: LoraTraining | FullTraining; trainer: Trainer; device: string }): TrainingStepper {
  const { model, trainable, trainer } = run;
  return {
    kind: trainable.kind,
    device: run.device,
    trainer,
    trainableParameters: trainable.parameterCount,
    get totalParameters() {
      return model.store.keys().reduce((n, k) => n + model.store.get(k).size, 0);
    },
    restoreWeights(checkpoint) {
      for (const [name, variable] of trainable.variables) {
        const value = tf.tensor(savedParameter(checkpoint, name, variable.shape), variable.shape);
        variable.assign(value);
        value.dispose();
      }
    },
    weights: ({ checkpoint }) =>
      trainable.kind === "lora"
        ? { kind: "lora", adapter: trainable.exportAdapter({ raw: checkpoint }) }
        : { kind: "full", tensors: trainable.exportTensors() },
    async release() {
      trainer.dispose();
      model.store.dispose();
    },
  };
}
