// @lowrank/core in the browser (the package's "browser" export): the LoRA spec without Node
// built-ins. Files come through a FileSource: a URL, a Hub repository, dropped files or OPFS.
export { LowrankError, type LowrankErrorCode } from "./errors/lowrank-error.js";
export { silentLogger, memoryLogger, type Logger } from "./logger.js";
export { createLoraConfig, TASK_TYPES, type LoraConfig, type LoraConfigInput } from "./config/lora-config.js";
export { parseLoraConfig, parseLoraConfigJson } from "./config/parse-lora-config.js";
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
export type { LoraAdapter } from "./adapter/lora-adapter.js";
export { readAdapterFrom, ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE } from "./adapter/read-adapter-from.js";
export { parseSafetensors } from "./formats/safetensors/parse-safetensors.js";
export { toFloat32, float32Tensor, type DType, type Tensor } from "./formats/safetensors/dtype.js";
export type { ModelDescription, ModuleInfo, ModuleKind, TensorInfo, WeightLayout } from "./model/model-description.js";
export { resolveTargets, type LoraModulePlan, type TargetReport } from "./targeting/resolve-targets.js";
export { loraScaling } from "./math/scaling.js";
export type { LoraFactors } from "./math/lora-factors.js";
export { loraDelta, mergeLora, unmergeLora } from "./math/merge.js";
export { bindAdapter, type BoundAdapter, type BoundModule } from "./adapter/bind-adapter.js";
export { collectLoraModules, type AdapterModules, type LoraModule } from "./adapter/lora-modules.js";
export { loadTokenizerFrom, type TextTokenizer } from "./text/tokenizer.js";
export { stopTokensOf } from "./text/stop-tokens-of.js";
export { peftToOnnxAdapter, onnxAdapterToPeft, type OnnxAdapterNaming } from "./convert/onnx-adapter-lora.js";
