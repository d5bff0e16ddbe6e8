import "reflect-metadata";

export { OnnxBackend, register, onnxFileOf } from "./onnx-backend.js";
export { OnnxLoraSession, type OnnxLoraSessionOptions } from "./session/onnx-lora-session.js";
export { createOrtSession, createSessionForModel, idsTensor, type ExecutionProvider, type SessionOptions } from "./session/ort-session.js";
export { mergeOnnxFile, mergeIntoOnnxModel, type MergedOnnx } from "./onnx/merge-onnx.js";
export { decodeModel, encodeModel, type ModelProto, type GraphProto, type NodeProto, type TensorProto } from "./onnx/onnx-codec.js";
export { locateWeights, moduleScope, type WeightLocation } from "./onnx/locate-weights.js";
export { addLoraSlots, type LoraSlot } from "./onnx/add-lora-slots.js";
export { writeOnnx } from "./onnx/write-onnx.js";
export { exportGpt2Onnx } from "./export/export-gpt2.js";
