// @lowrank/backend-tfjs: TensorFlow.js as a lowrank backend. Internals: "@lowrank/backend-tfjs/internal" (unstable).
export { TfjsBackend, register } from "./tfjs-backend.js";
export { selectEngine, ENGINES, type EngineChoice, type EngineName } from "./engine/select-engine.js";
export { loadModel, SUPPORTED_MODEL_TYPES } from "./models/load-model.js";
export type { TfjsModel } from "./models/model.js";
export { attachAdapter, detachAdapter, setMerged, type AttachedAdapter } from "./lora/attach-adapter.js";
export { AdapterHost, BASE_ROWS } from "./lora/adapter-host.js";
export { generate, type GenerateOptions } from "./generate/generate.js";
