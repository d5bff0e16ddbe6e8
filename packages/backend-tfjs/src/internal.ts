// @lowrank/backend-tfjs/internal: shared with the benchmark suite and the demo. Unstable.
export { checkPredictInput } from "./tfjs-backend.js";
export type { ForwardInput, ForwardOutput, KvCache, ModelTask } from "./models/model.js";
export { inferenceContext, type ForwardContext, type LoraBranch } from "./layers/lora-branch.js";
export { Trainer, type TrainerOptions, type StepLog, type EvalResult } from "./training/trainer.js";
export { createLoraTraining, createFullTraining, type LoraTraining, type FullTraining, type TrainableSet } from "./training/trainable.js";
export { prepareTfjsTraining } from "./training/prepare-tfjs-training.js";
export { tfjsStepper } from "./training/tfjs-stepper.js";
export { readExamples, type Example } from "./data/read-examples.js";
