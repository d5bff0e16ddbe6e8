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
export { runOnnxTraining, type OnnxTrainingOptions } from "./training/run-onnx-training.js";
export { createOnnxLoraTraining, type OnnxLoraTraining, type CreateOnnxLoraTrainingParams } from "./training/create-onnx-lora-training.js";
export { OnnxLoraTrainer } from "./training/onnx-trainer.js";
export { buildTrainingGraph, type TrainingArchitecture } from "./training/training-graph.js";
export { trainingArchitecture, ONNX_TRAINABLE_MODEL_TYPES } from "./training/architectures.js";
export { planLoraSlots, initialFactors, gradientName, type TrainingSlot } from "./training/lora-plan.js";
export { runBatch, openGraphSession, type BatchResult } from "./training/training-session.js";
export { saveOnnxCheckpoint, restoreOnnxCheckpoint } from "./training/onnx-checkpoint.js";
