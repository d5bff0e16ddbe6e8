// @lowrank/core/internal: what lowrank's packages share with each other beyond the public API
// (math kernels, training internals, file helpers). Unstable: it may change in any release.
export { ensure } from "./errors/lowrank-error.js";
export { loraConfigSchema } from "./config/lora-config.js";
export { checkModelInput } from "./model/check-model-input.js";
export { attentionWindow } from "./model/attention-window.js";
export { checkTargetModule, patternKeyFor, type TargetVerdict } from "./targeting/check-target-module.js";
export { expandTargetModules, moduleHyperparameters } from "./targeting/resolve-targets.js";
export { doraOutputScale, mergeLoraBias, outputNorms, storedShape, type MergeRecord, type MergeOptions } from "./math/merge.js";
export { addLowRankProduct, transpose } from "./math/low-rank-update.js";
export { initLoraFactors, type InitParams, type InitResult } from "./math/init.js";
export { qrDecomposition, svdDecomposition } from "./math/linalg.js";
export { SeededRandom } from "./math/random.js";
export { ropeFrequencies, type RopeScaling } from "./math/rope.js";
export type { MajoritySignMethod } from "./combine/merge-utils.js";
export { effectiveRank } from "./analyze/analyze-adapter.js";
export { summarizeModule } from "./analyze/summarize-module.js";
export { DTYPES, DTYPE_BYTES, fromFloat32, int64Tensor, toIntegers, elementCount } from "./formats/safetensors/dtype.js";
export { SafetensorsWriter, serializeSafetensors, type TensorSpec } from "./formats/safetensors/write-safetensors.js";
export { AtomicFile, writeFileAtomic, writeDirectoryAtomic, removeAbandonedTemps } from "./formats/atomic-write.js";
export { testKillPoint, TEST_KILL_ENV } from "./formats/test-kill-point.js";
export { readTorchStateDict, parseTorchStateDict, type TorchTensor } from "./formats/torch/read-torch-state-dict.js";
export { parseAdapterKey, adapterKey, PEFT_PREFIX, type AdapterKey } from "./adapter/adapter-keys.js";
export { copyModelFiles, WEIGHT_FILE } from "./merge/merge-checkpoint.js";
export { learningRateAt, stepLearningRate, type ScheduleName } from "./training/schedule.js";
export { makeBatch, BatchOrder, causalTargets, TrainingBatches, type Batch, type MicroBatch, type TrainingExample } from "./training/batches.js";
export { readExamples, type ExampleTokenizer, type ReadExamplesOptions } from "./training/read-examples.js";
export { conversationTokens, parseMessages, CHAT_ROLES } from "./training/conversation-tokens.js";
export { packExamples, type PackedExample } from "./training/pack-examples.js";
export { ChatTemplate, type ChatMessage } from "./text/chat-template.js";
export { Float32AdamW, clipGradNorm, ADAMW_DEFAULTS, type AdamWOptions, type AdamWState } from "./training/adamw.js";
export { trainingSummaryText, TRAINING_SUMMARY_FILE } from "./training/training-summary.js";
export { trainerOptionsFor, type TrainerOptions, type StepLog, type EvalResult, type TrainerState } from "./training/trainer-types.js";
export {
  TRAINER_STATE_FILE,
  OPTIMIZER_FILE,
  trainerStateText,
  optimizerStateBytes,
  readTrainingCheckpoint,
  savedParameter,
  saveTrainingCheckpoint,
  restoreTrainingCheckpoint,
  type SavedTrainerState,
} from "./training/training-checkpoint.js";
export { loraInitSeed, dropoutSeed } from "./training/seeds.js";
export { writeTrainedWeights } from "./training/write-trained-weights.js";
export { runTraining } from "./training/run-training.js";
export type {
  TrainingStepper,
  BackendTrainer,
  PrepareTrainingStepper,
  TrainingRun,
  TrainingDataFormat,
  TrainedWeights,
  CheckpointWeights,
} from "./training/training-stepper.js";
export { sampleToken, type SamplingOptions } from "./generation/sample-token.js";
export { TokenDecoder, type DecodeOptions } from "./generation/token-decoder.js";
export { ConfigValues } from "./model/config-values.js";
export { decoderOptions, type DecoderOptions } from "./model/decoder-options.js";
export { logBucketPosition, relativePosition, type RelativePositionParams } from "./math/relative-position.js";
export { convertToPlainLora } from "./math/pissa-conversion.js";
export { encodeGguf, readGguf, GGML_TYPE, type GgufTensor, type GgufValue, type GgmlTypeName } from "./convert/gguf-file.js";
export { ggufTensorName, permuteRows, type ConversionBase } from "./convert/gguf-lora.js";
export { encodeOnnxAdapter, decodeOnnxAdapter, type OnnxAdapterParameter } from "./convert/onnx-adapter-file.js";
