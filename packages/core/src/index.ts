import "reflect-metadata";

// Errors and logging
export { LowrankError, ensure, type LowrankErrorCode } from "./errors/lowrank-error.js";
export { stderrLogger, silentLogger, memoryLogger, type Logger } from "./logger.js";

// Config (PEFT adapter_config.json)
export { createLoraConfig, loraConfigSchema, TASK_TYPES, type LoraConfig, type LoraConfigInput } from "./config/lora-config.js";
export { parseLoraConfig, parseLoraConfigJson, readLoraConfig } from "./config/read-lora-config.js";
export { serializeLoraConfig, writeLoraConfig } from "./config/write-lora-config.js";

// Model description and targeting
export type { ModelDescription, ModuleInfo, ModuleKind, TensorInfo, WeightLayout } from "./model/model-description.js";
export { describeModel } from "./model/describe-model.js";
export { checkModelInput } from "./model/check-model-input.js";
export { attentionWindow } from "./model/attention-window.js";
export { checkTargetModule, patternKeyFor, type TargetVerdict } from "./targeting/check-target-module.js";
export { resolveTargets, expandTargetModules, moduleHyperparameters, type LoraModulePlan, type TargetReport } from "./targeting/resolve-targets.js";
export { DEFAULT_TARGET_MODULES } from "./targeting/default-target-modules.js";

// Math
export { loraScaling } from "./math/scaling.js";
export type { LoraFactors } from "./math/lora-factors.js";
export { loraDelta, mergeLora, unmergeLora, mergeLoraBias, outputNorms, storedShape, type MergeRecord, type MergeOptions } from "./math/merge.js";
export { addLowRankProduct, transpose } from "./math/low-rank-update.js";
export { initLoraFactors, type InitParams, type InitResult } from "./math/init.js";
export { qrDecomposition, svdDecomposition } from "./math/linalg.js";
export { SeededRandom } from "./math/random.js";
export { ropeFrequencies, type RopeScaling } from "./math/rope.js";

// Combination and analysis
export { combineAdapters, type CombineOptions, type WeightedAdapter } from "./combine/combine-adapters.js";
export { COMBINATIONS, type CombinationType } from "./combine/combine-plan.js";
export type { MajoritySignMethod } from "./combine/merge-utils.js";
export { analyzeAdapter, effectiveRank, type AnalyzeOptions, type BaseWeights, type ModuleAnalysis } from "./analyze/analyze-adapter.js";
export { subspaceSimilarity } from "./analyze/subspace-similarity.js";
export { summarizeModule } from "./analyze/summarize-module.js";

// Formats
export { DTYPES, DTYPE_BYTES, toFloat32, fromFloat32, float32Tensor, int64Tensor, toIntegers, elementCount, type DType, type Tensor } from "./formats/safetensors/dtype.js";
export { SafetensorsFile, readSafetensors } from "./formats/safetensors/safetensors-file.js";
export { SafetensorsWriter, writeSafetensors, serializeSafetensors, type TensorSpec } from "./formats/safetensors/write-safetensors.js";
export { Checkpoint } from "./formats/checkpoint.js";
export { AtomicFile, writeFileAtomic, writeDirectoryAtomic, removeAbandonedTemps } from "./formats/atomic-write.js";
export { testKillPoint, TEST_KILL_ENV } from "./formats/test-kill-point.js";
export { readTorchStateDict, parseTorchStateDict, type TorchTensor } from "./formats/torch/read-torch-state-dict.js";

// Adapters
export type { LoraAdapter } from "./adapter/lora-adapter.js";
export { readAdapter, ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE } from "./adapter/read-adapter.js";
export { writeAdapter } from "./adapter/write-adapter.js";
export { parseAdapterKey, adapterKey, PEFT_PREFIX, type AdapterKey } from "./adapter/adapter-keys.js";
export { bindAdapter, type BoundAdapter, type BoundModule } from "./adapter/bind-adapter.js";
export { collectLoraModules, type AdapterModules, type LoraModule } from "./adapter/lora-modules.js";
export { mergeCheckpoint, copyModelFiles, WEIGHT_FILE, type MergeCheckpointParams, type MergeCheckpointResult } from "./merge/merge-checkpoint.js";
export { importLoralib, type ImportLoralibParams } from "./import/import-loralib.js";

// Training (backend-neutral: the run loop and its stepper contract, data, batches, schedule, seeds, AdamW on Float32Arrays, checkpoint files)
export { learningRateAt, type ScheduleName } from "./training/schedule.js";
export { makeBatch, BatchOrder, causalTargets, stepMicroBatches, type Batch, type MicroBatch, type TrainingExample } from "./training/batches.js";
export { readExamples, type ExampleTokenizer, type ReadExamplesOptions } from "./training/read-examples.js";
export { Float32AdamW, clipGradNorm, ADAMW_DEFAULTS, type AdamWOptions, type AdamWState } from "./training/adamw.js";
export { trainingSummaryText, TRAINING_SUMMARY_FILE } from "./training/training-summary.js";
export { trainerOptionsFor, type TrainerOptions, type StepLog, type EvalResult, type TrainerState } from "./training/trainer-types.js";
export {
  TRAINER_STATE_FILE, OPTIMIZER_FILE, trainerStateText, optimizerStateBytes, readTrainingCheckpoint, savedParameter, saveTrainingCheckpoint,
  restoreTrainingCheckpoint, type SavedTrainerState,
} from "./training/training-checkpoint.js";
export { loraInitSeed, dropoutSeed } from "./training/seeds.js";
export { writeTrainedWeights } from "./training/write-trained-weights.js";
export { runTraining } from "./training/run-training.js";
export type { TrainingStepper, BackendTrainer, PrepareTrainingStepper, TrainingRun, TrainingDataFormat, TrainedWeights, CheckpointWeights } from "./training/training-stepper.js";

// Backends
export type { LowrankBackend, BackendCapability, BackendFactory, BackendInitResult, PredictParams, PredictResult, MergeParams, FloatArray, TrainParams, TrainEvent, GenerateParams, GenerateResult } from "./backend/backend.js";
export { BackendRegistry, type ResolvedBackend } from "./backend/backend-registry.js";
export { loadBackendPlugin, type RegisterPlugin } from "./backend/load-plugin.js";
