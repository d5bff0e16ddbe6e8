import "reflect-metadata";

export { TfjsBackend, register, checkPredictInput } from "./tfjs-backend.js";
export { selectEngine, ENGINES, type EngineChoice, type EngineName } from "./engine/select-engine.js";
export { loadModel, SUPPORTED_MODEL_TYPES } from "./models/load-model.js";
export type { TfjsModel, ForwardInput, ForwardOutput, KvCache, ModelTask } from "./models/model.js";
export { attachAdapter, detachAdapter, setMerged, type AttachedAdapter } from "./lora/attach-adapter.js";
export { AdapterHost, BASE_ROWS } from "./lora/adapter-host.js";
export { inferenceContext, type ForwardContext, type LoraBranch } from "./layers/lora-branch.js";
export { Trainer, type TrainerOptions, type StepLog, type EvalResult } from "./training/trainer.js";
export { createLoraTraining, createFullTraining, type LoraTraining, type FullTraining, type TrainableSet } from "./training/trainable.js";
export { runTraining } from "./training/run-training.js";
export { readExamples, type Example } from "./data/read-examples.js";
export { loadTokenizer, type TextTokenizer } from "./data/tokenizer.js";
export { generate, type GenerateOptions } from "./generate/generate.js";
