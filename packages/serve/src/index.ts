// @lowrank/serve: one base model, many LoRA adapters, an OpenAI-compatible server (continuous batching on ONNX Runtime).
export { ServeEngine, type ServeEngineOptions, type GenerationRequest, type Generation, type GeneratedToken, type FinishReason } from "./serve-engine.js";
export { AdapterPool, type AdapterSource } from "./adapter-pool.js";
export { ServeError } from "./serve-error.js";
export { startServeServer, type ServeServer, type ServeServerOptions } from "./serve-server.js";
