// @lowrank/backend-onnx: ONNX Runtime as a lowrank backend. Internals: "@lowrank/backend-onnx/internal" (unstable).
export { OnnxBackend, register, onnxFileOf } from "./onnx-backend.js";
export { OnnxLoraSession, type OnnxLoraSessionOptions } from "./session/onnx-lora-session.js";
export { createOrtSession, idsTensor, type ExecutionProvider, type SessionOptions } from "./session/ort-session.js";
export { mergeIntoOnnxModel, type MergedOnnx } from "./onnx/merge-onnx.js";
export { mergeOnnxFile } from "./onnx/merge-onnx-file.js";
export { decodeModel, encodeModel, type ModelProto } from "./onnx/onnx-codec.js";
export { writeOnnx } from "./onnx/write-onnx.js";
export { buildDecoderGraph, ONNX_DECODER_MODEL_TYPES } from "./export/decoder-graph.js";
export { buildEncoderGraph, ONNX_ENCODER_MODEL_TYPES } from "./export/encoder-graph.js";
export { buildCheckpointGraph, ONNX_MODEL_TYPES } from "./export/checkpoint-graph.js";
export { probeExecutionProviders, onnxRuntimeVersion, CUDA_PROVIDER_INSTALL_COMMAND, type ProviderStatus } from "./session/probe-providers.js";
