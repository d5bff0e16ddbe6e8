import "reflect-metadata";

// @lowrank/core: the LoRA spec, bit-compatible with PEFT. What packages share beyond this is in
// "@lowrank/core/internal" (unstable).
export { LowrankError, type LowrankErrorCode } from "./errors/lowrank-error.js";
export { stderrLogger, silentLogger, memoryLogger, type Logger } from "./logger.js";
export { createLoraConfig, TASK_TYPES, type LoraConfig, type LoraConfigInput } from "./config/lora-config.js";
export { parseLoraConfig, parseLoraConfigJson } from "./config/parse-lora-config.js";
export { readLoraConfig } from "./config/read-lora-config.js";
export { serializeLoraConfig, writeLoraConfig } from "./config/write-lora-config.js";
export type { ModelDescription, ModuleInfo, ModuleKind, TensorInfo, WeightLayout } from "./model/model-description.js";
export { describeModel } from "./model/describe-model.js";
export { resolveTargets, type LoraModulePlan, type TargetReport } from "./targeting/resolve-targets.js";
export { DEFAULT_TARGET_MODULES } from "./targeting/default-target-modules.js";
export { loraScaling } from "./math/scaling.js";
export type { LoraFactors } from "./math/lora-factors.js";
export { loraDelta, mergeLora, unmergeLora } from "./math/merge.js";
export { combineAdapters, type CombineOptions, type WeightedAdapter } from "./combine/combine-adapters.js";
export { COMBINATIONS, type CombinationType } from "./combine/combine-plan.js";
export { analyzeAdapter, type AnalyzeOptions, type BaseWeights, type ModuleAnalysis } from "./analyze/analyze-adapter.js";
export { subspaceSimilarity } from "./analyze/subspace-similarity.js";
export { toFloat32, float32Tensor, type DType, type Tensor } from "./formats/safetensors/dtype.js";
export { SafetensorsFile, readSafetensors } from "./formats/safetensors/safetensors-file.js";
export { writeSafetensors } from "./formats/safetensors/write-safetensors.js";
export { Checkpoint } from "./formats/checkpoint.js";
export type { LoraAdapter } from "./adapter/lora-adapter.js";
export { readAdapter, ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE } from "./adapter/read-adapter.js";
export { writeAdapter } from "./adapter/write-adapter.js";
export { bindAdapter, type BoundAdapter, type BoundModule } from "./adapter/bind-adapter.js";
export { collectLoraModules, type AdapterModules, type LoraModule } from "./adapter/lora-modules.js";
export { mergeCheckpoint, type MergeCheckpointParams, type MergeCheckpointResult } from "./merge/merge-checkpoint.js";
export { importLoralib, type ImportLoralibParams } from "./import/import-loralib.js";
export { loadTokenizerFrom, type TextTokenizer } from "./text/tokenizer.js";
export { loadTokenizer } from "./text/load-tokenizer.js";
export { readStopTokens } from "./text/stop-tokens.js";
export { stopTokensOf } from "./text/stop-tokens-of.js";
export {
  urlSource,
  hubSource,
  fileListSource,
  opfsSource,
  readJsonFrom,
  type FileSource,
  type UrlSourceOptions,
  type HubSourceOptions,
} from "./files/file-source.js";
export { folderSource } from "./files/folder-source.js";
export { readAdapterFrom } from "./adapter/read-adapter-from.js";
export { parseSafetensors } from "./formats/safetensors/parse-safetensors.js";
export type {
  LowrankBackend,
  BackendCapability,
  BackendFactory,
  BackendInitResult,
  PredictParams,
  PredictResult,
  MergeParams,
  FloatArray,
  TrainParams,
  TrainEvent,
  GenerateParams,
  GenerateResult,
  BackendJob,
} from "./backend/backend.js";
export { BackendRegistry, type ResolvedBackend } from "./backend/backend-registry.js";
export { loadBackendPlugin, type RegisterPlugin } from "./backend/load-plugin.js";
export { ADAPTER_FORMATS, conversionBase, detectAdapterFormat, readAdapterAs, writeAdapterAs, type AdapterFormat } from "./convert/convert-adapter.js";
export { peftToGguf, ggufToPeft } from "./convert/gguf-lora.js";
export { peftToMlx, mlxToPeft, type MlxAdapter } from "./convert/mlx-lora.js";
export { peftToOnnxAdapter, onnxAdapterToPeft, type OnnxAdapterNaming } from "./convert/onnx-adapter-lora.js";
