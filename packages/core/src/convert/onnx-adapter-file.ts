import * as flatbuffers from "flatbuffers";
import { LowrankError } from "../errors/lowrank-error.js";
import { fromFloat32, toFloat32 } from "../formats/safetensors/dtype.js";

/** ONNX Runtime's adapter file (onnxruntime/lora/adapter_format/adapter_schema.fbs): identifier and version. */
const IDENTIFIER = "TORT";
const FORMAT_VERSION = 1;
/** TensorDataType values the adapter format uses for floats. */
const DATA_TYPES = { F32: 1, F16: 10, BF16: 16 } as const;
type FloatType = keyof typeof DATA_TYPES;

/** One named parameter of an adapter file: a graph input's value. */
export interface OnnxAdapterParameter {
  name: string;
  dims: number[];
  values: Float32Array;
}

/**
 * An `.onnx_adapter` file as onnxruntime's AdapterFormat writes it: a FlatBuffer with identifier
 * "TORT", table Adapter { format_version = 1, adapter_version, model_version, parameters } and
 * table Parameter { name, dims: [int64], data_type, raw_data: [uint8] (aligned to 8) }.
 */
export function encodeOnnxAdapter(
  parameters: readonly OnnxAdapterParameter[],
  options: { dataType?: FloatType; adapterVersion?: number; modelVersion?: number } = {},
): Uint8Array {
  const type = options.dataType ?? "F32";
  const b = new flatbuffers.Builder(1024);
  const offsets = parameters.map((p) => {
    const name = b.createString(p.name);
    b.startVector(8, p.dims.length, 8);
    for (const d of [...p.dims].reverse()) b.addInt64(BigInt(d));
    const dims = b.endVector();
    const raw = fromFloat32(p.values, type, p.name);
    // createByteVector with the schema's force_align: 8.
    b.startVector(1, raw.length, 8);
    const builder = b as unknown as { space: number; bb: flatbuffers.ByteBuffer };
    builder.space -= raw.length;
    builder.bb.bytes().set(raw, builder.space);
    const data = b.endVector();
    b.startObject(4);
    b.addFieldOffset(0, name, 0);
    b.addFieldOffset(1, dims, 0);
    b.addFieldInt32(2, DATA_TYPES[type], 0);
    b.addFieldOffset(3, data, 0);
    return b.endObject();
  });
  b.startVector(4, offsets.length, 4);
  for (const o of [...offsets].reverse()) b.addOffset(o);
  const list = b.endVector();
  b.startObject(4);
  b.addFieldInt32(0, FORMAT_VERSION, 0);
  b.addFieldInt32(1, options.adapterVersion ?? 0, 0);
  b.addFieldInt32(2, options.modelVersion ?? 0, 0);
  b.addFieldOffset(3, list, 0);
  b.finish(b.endObject(), IDENTIFIER);
  return b.asUint8Array().slice();
}

/**
 * Reads an `.onnx_adapter` file's parameters (float32, float16 or bfloat16 data) as float32.
 * @throws LowrankError CHECKPOINT_INVALID naming the file: not "TORT", another format version, a
 *   truncated buffer, another data type, or data that does not fill the dims.
 */
export function decodeOnnxAdapter(
  bytes: Uint8Array,
  label: string,
): { formatVersion: number; adapterVersion: number; modelVersion: number; parameters: OnnxAdapterParameter[] } {
  const fail = (why: string): never => {
    throw new LowrankError("CHECKPOINT_INVALID", `${label}: ${why}`);
  };
  if (bytes.length < 8) fail("too short for an ONNX Runtime adapter file");
  const bb = new flatbuffers.ByteBuffer(bytes);
  if (!bb.__has_identifier(IDENTIFIER)) fail(`not an ONNX Runtime adapter file (no "${IDENTIFIER}" identifier)`);
  const within = (at: number, n = 4) => {
    if (at < 0 || at + n > bytes.length) fail("the file ends early (truncated adapter)");
    return at;
  };
  const root = within(bb.readInt32(0));
  const field = (table: number, i: number) => {
    const vtable = within(table - bb.readInt32(within(table)));
    return i * 2 + 4 < bb.readInt16(within(vtable, 2)) ? bb.readInt16(within(vtable + 4 + i * 2, 2)) : 0;
  };
  const int = (table: number, i: number) => {
    const o = field(table, i);
    return o === 0 ? 0 : bb.readInt32(within(table + o));
  };
  const vector = (table: number, i: number) => {
    const o = field(table, i);
    if (o === 0) return { start: 0, length: 0 };
    const at = within(table + o) + bb.readInt32(within(table + o));
    return { start: within(at) + 4, length: bb.readInt32(at) };
  };
  const formatVersion = int(root, 0);
  if (formatVersion !== FORMAT_VERSION) fail(`adapter format version ${formatVersion}; lowrank reads version ${FORMAT_VERSION}`);
  const list = vector(root, 3);
  const types = Object.fromEntries(Object.entries(DATA_TYPES).map(([k, v]) => [v, k])) as Record<number, FloatType>;
  const parameters = Array.from({ length: list.length }, (_, i): OnnxAdapterParameter => {
    const at = within(list.start + i * 4);
    const table = at + bb.readInt32(at);
    const nameField = field(table, 0);
    const nameAt = within(table + nameField) + bb.readInt32(within(table + nameField));
    const nameLength = bb.readInt32(within(nameAt));
    const name = new TextDecoder().decode(bytes.subarray(within(nameAt + 4, nameLength), nameAt + 4 + nameLength));
    const dimsVector = vector(table, 1);
    const dims = Array.from({ length: dimsVector.length }, (_, d) => Number(bb.readInt64(within(dimsVector.start + d * 8, 8))));
    const type = types[int(table, 2)] ?? fail(`parameter "${name}" has data type ${int(table, 2)}; lowrank reads float, float16 and bfloat16`);
    const raw = vector(table, 3);
    const count = dims.reduce((a, d) => a * d, 1);
    const width = type === "F32" ? 4 : 2;
    if (raw.length !== count * width) fail(`parameter "${name}" holds ${raw.length} bytes for dims [${dims.join(", ")}]`);
    const data = bytes.slice(within(raw.start, raw.length), raw.start + raw.length);
    return { name, dims, values: toFloat32({ dtype: type, shape: dims, data }, name) };
  });
  return { formatVersion, adapterVersion: int(root, 1), modelVersion: int(root, 2), parameters };
}
