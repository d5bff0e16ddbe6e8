import "reflect-metadata";

export { TfjsBackend, register, checkPredictInput } from "./tfjs-backend.js";
export { selectEngine, ENGINES, type EngineChoice, type EngineName } from "./engine/select-engine.js";
export { loadModel, SUPPORTED_MODEL_TYPES } from "./models/load-model.js";
export type { TfjsModel, ForwardInput, ForwardOutput, KvCache, ModelTask } from "./models/model.js";
export { attachAdapter, detachAdapter, setMerged, type AttachedAdapter } from "./lora/attach-adapter.js";
export { inferenceContext, type ForwardContext, type LoraBranch } from "./layers/lora-branch.js";
