import { LowrankError } from "@lowrank/core";
import { isAbsolutePath, joinPath, readFileRange } from "../platform/files.js";
import { EXTERNAL_LOCATION, ONNX_FLOAT, toNumber, type TensorProto } from "./onnx-codec.js";

export function tensorDims(t: TensorProto): number[] {
  return t.dims.map(toNumber);
}

function externalEntry(t: TensorProto, key: string): string | undefined {
  return t.external_data?.find((e) => e.key === key)?.value;
}

/** Bytes per element of the ONNX data types stored as raw little-endian data. */
const ELEMENT_BYTES: Readonly<Record<number, number>> = { 1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 16: 2 };

/**
 * An initializer's raw little-endian bytes, from raw_data or an external data file (models over
 * 2 GB keep weights beside the .onnx file; only the tensor's own range is read).
 * @throws LowrankError CHECKPOINT_INVALID for unreadable external data or an inconsistent size.
 */
export function readTensorBytes(t: TensorProto, modelDir: string): Uint8Array {
  const count = tensorDims(t).reduce((a, b) => a * b, 1);
  const size = ELEMENT_BYTES[t.data_type];
  if (t.data_location !== EXTERNAL_LOCATION) {
    if (t.raw_data && t.raw_data.byteLength > 0) return t.raw_data;
    throw new LowrankError("CHECKPOINT_INVALID", `initializer "${t.name}" has no raw data`);
  }
  const location = externalEntry(t, "location");
  if (!location || isAbsolutePath(location) || location.split(/[\\/]/).includes("..")) {
    throw new LowrankError("CHECKPOINT_INVALID", `initializer "${t.name}": external data location ${JSON.stringify(location)} must be a file beside the model`);
  }
  const offset = Number(externalEntry(t, "offset") ?? 0);
  const length = Number(externalEntry(t, "length") ?? (size ? count * size : NaN));
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || (size !== undefined && length !== count * size)) {
    throw new LowrankError("CHECKPOINT_INVALID", `initializer "${t.name}": external data offset ${offset} / length ${length} do not fit its shape`);
  }
  return readFileRange(joinPath(modelDir, location), offset, length, `initializer "${t.name}"`);
}

/**
 * A float32 initializer's values, from raw_data, float_data or an external data file.
 * @throws LowrankError CHECKPOINT_INVALID for other dtypes or unreadable external data.
 */
export function readFloatTensor(t: TensorProto, modelDir: string): Float32Array {
  if (t.data_type !== ONNX_FLOAT)
    throw new LowrankError("CHECKPOINT_INVALID", `initializer "${t.name}" has ONNX data type ${t.data_type}; only float32 (1) weights can be adapted`);
  const count = tensorDims(t).reduce((a, b) => a * b, 1);
  if (t.data_location !== EXTERNAL_LOCATION && !(t.raw_data && t.raw_data.byteLength > 0)) {
    if (t.float_data && t.float_data.length > 0) return Float32Array.from(t.float_data);
    if (count === 0) return new Float32Array(0);
  }
  const bytes = readTensorBytes(t, modelDir);
  if (bytes.byteLength !== count * 4)
    throw new LowrankError("CHECKPOINT_INVALID", `initializer "${t.name}" holds ${bytes.byteLength} bytes for ${count} float32 values`);
  const out = new Float32Array(count);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}

/** Stores float32 values as raw_data (inline; external data is rewritten by the writer). */
export function writeFloatTensor(t: TensorProto, values: Float32Array): void {
  t.raw_data = new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength));
  if (t.float_data && t.float_data.length > 0) t.float_data = [];
  if (t.data_location === EXTERNAL_LOCATION) {
    delete t.data_location;
    t.external_data = [];
  }
}
