// @lowrank/core/internal in the browser: what lowrank's browser entries share (no Node built-ins).
export { ensure } from "./errors/lowrank-error.js";
export { doraOutputScale, mergeLoraBias, outputNorms, storedShape, type MergeRecord, type MergeOptions } from "./math/merge.js";
export { addLowRankProduct, transpose } from "./math/low-rank-update.js";
export { DTYPES, DTYPE_BYTES, fromFloat32, int64Tensor, toIntegers, elementCount } from "./formats/safetensors/dtype.js";
export { parseAdapterKey, adapterKey, PEFT_PREFIX, type AdapterKey } from "./adapter/adapter-keys.js";
export { sampleToken, type SamplingOptions } from "./generation/sample-token.js";
export { TokenDecoder, type DecodeOptions } from "./generation/token-decoder.js";
export { encodeOnnxAdapter, decodeOnnxAdapter, type OnnxAdapterParameter } from "./convert/onnx-adapter-file.js";
