import { readFileSync } from "node:fs";
import path from "node:path";
import { LowrankError } from "@lowrank/core";
import { EXTERNAL_LOCATION, ONNX_FLOAT, toNumber, type TensorProto } from "./onnx-codec.js";

export function tensorDims(t: TensorProto): number[] {
  return t.dims.map(toNumber);
}

function externalEntry(t: TensorProto, key: string): string | undefined {
  return t.external_data?.find((e) => e.key === key)?.value;
}

/**
 * A float32 initializer's values, from raw_data, float_data or an external data file (models over
 * 2 GB keep weights beside the .onnx file).
 * @throws LowrankError CHECKPOINT_INVALID for other dtypes or unreadable external data.
 */
export function readFloatTensor(t: TensorProto, modelDir: string): Float32Array {
  if (t.data_type !== ONNX_FLOAT) throw new LowrankError("CHECKPOINT_INVALID", `initializer "${t.name}" has ONNX data type ${t.data_type}; only float32 (1) weights can be adapted`);
  const count = tensorDims(t).reduce((a, b) => a * b, 1);
  let bytes: Uint8Array | undefined;
  if (t.data_location === EXTERNAL_LOCATION) {
    const location = externalEntry(t, "location");
    if (!location || path.isAbsolute(location) || location.split(/[\\/]/).includes("..")) {
      throw new LowrankError("CHECKPOINT_INVALID", `initializer "${t.name}": external data location ${JSON.stringify(location)} must be a file beside the model`);
    }
    const offset = Number(externalEntry(t, "offset") ?? 0);
    const length = Number(externalEntry(t, "length") ?? count * 4);
    const file = path.join(modelDir, location);
    let all: Buffer;
    try {
      all = readFileSync(file);
    } catch (error) {
      throw new LowrankError("CHECKPOINT_INVALID", `initializer "${t.name}": cannot read external data ${file} (${(error as NodeJS.ErrnoException).code})`);
    }
    if (offset + length > all.byteLength || length !== count * 4) throw new LowrankError("CHECKPOINT_INVALID", `initializer "${t.name}": external data range [${offset}, ${offset + length}) does not fit ${file} or the shape`);
    bytes = all.subarray(offset, offset + length);
  } else if (t.raw_data && t.raw_data.byteLength > 0) {
    bytes = t.raw_data;
  } else if (t.float_data && t.float_data.length > 0) {
    return Float32Array.from(t.float_data);
  } else if (count === 0) {
    return new Float32Array(0);
  }
  if (!bytes || bytes.byteLength !== count * 4) throw new LowrankError("CHECKPOINT_INVALID", `initializer "${t.name}" holds ${bytes?.byteLength ?? 0} bytes for ${count} float32 values`);
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
