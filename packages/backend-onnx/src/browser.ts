// @lowrank/backend-onnx in the browser (the package's "browser" export): the same sessions on
// onnxruntime-web (WebAssembly, threads on cross-origin-isolated pages, WebGPU when asked for and
// present). Models and adapters come as bytes: fetch them, or read them with core's FileSource.
export { OnnxLoraSession, type OnnxLoraSessionOptions } from "./session/onnx-lora-session.js";
export { createOrtSession, idsTensor, type ExecutionProvider, type SessionOptions } from "./session/ort-session.js";
export { kvLayoutOf, generateWithKvCache, generateWithoutCache, generateBatchWithKvCache, type KvLayout } from "./session/kv-cache.js";
export { decodeModel, encodeModel, type ModelProto } from "./onnx/onnx-codec.js";
export { configureWebRuntime, type WebRuntime, type WebRuntimeOptions } from "./platform/web-runtime.js";
