// @lowrank/backend-onnx/internal: shared with the benchmark suite and the demo. Unstable.
export { createSessionForModel } from "./session/ort-session.js";
export type { GraphProto, NodeProto, TensorProto } from "./onnx/onnx-codec.js";
export { locateWeights, moduleScope, type WeightLocation } from "./onnx/locate-weights.js";
export { addLoraSlots, type LoraSlot } from "./onnx/add-lora-slots.js";
export { prepareOnnxTraining, type OnnxTrainingOptions } from "./training/prepare-onnx-training.js";
export { onnxStepper } from "./training/onnx-stepper.js";
export { createOnnxLoraTraining, type OnnxLoraTraining, type CreateOnnxLoraTrainingParams } from "./training/create-onnx-lora-training.js";
export { OnnxLoraTrainer } from "./training/onnx-trainer.js";
export { buildTrainingGraph, type TrainingArchitecture } from "./training/training-graph.js";
export { trainingArchitecture, ONNX_TRAINABLE_MODEL_TYPES } from "./training/architectures.js";
export { planLoraSlots, initialFactors, gradientName, type TrainingSlot } from "./training/lora-plan.js";
export { runBatch, openGraphSession, type BatchResult } from "./training/training-session.js";
export {
  emptyPast,
  generateBatchWithKvCache,
  generateWithKvCache,
  generateWithoutCache,
  kvLayoutOf,
  kvStepFeeds,
  presentAsPast,
  type KvLayout,
} from "./session/kv-cache.js";
export { onnxSourceOf, type OnnxSource } from "./onnx-backend.js";
