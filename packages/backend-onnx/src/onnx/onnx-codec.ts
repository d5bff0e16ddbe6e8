import protobuf from "protobufjs";
import { LowrankError } from "@lowrank/core";
import { ONNX_PROTO } from "./onnx-proto.js";

const root = protobuf.parse(ONNX_PROTO, { keepCase: true }).root;
const ModelProtoType = root.lookupType("onnx.ModelProto");
const TensorProtoType = root.lookupType("onnx.TensorProto");
const NodeProtoType = root.lookupType("onnx.NodeProto");

/** protobufjs's int64 (a Long when long.js is present, else a number). */
export type Int64 = number | { toNumber(): number };

export interface StringStringEntry {
  key: string;
  value: string;
}

/** onnx.TensorProto, as decoded (snake_case field names, as in onnx.proto). */
export interface TensorProto {
  name: string;
  dims: Int64[];
  data_type: number;
  raw_data?: Uint8Array;
  float_data?: number[];
  data_location?: number;
  external_data?: StringStringEntry[];
}

export interface AttributeProto {
  name: string;
  type?: number;
  i?: Int64;
  ints?: Int64[];
  f?: number;
  s?: Uint8Array;
}

export interface NodeProto {
  name: string;
  op_type: string;
  domain?: string;
  input: string[];
  output: string[];
  attribute: AttributeProto[];
}

export interface ValueInfoProto {
  name: string;
  type?: unknown;
}

export interface GraphProto {
  name: string;
  node: NodeProto[];
  initializer: TensorProto[];
  input: ValueInfoProto[];
  output: ValueInfoProto[];
  value_info: ValueInfoProto[];
}

export interface ModelProto {
  ir_version?: Int64;
  opset_import: { domain?: string; version: Int64 }[];
  graph: GraphProto;
}

/** TensorProto.DataType values lowrank handles. */
export const ONNX_FLOAT = 1;
export const ONNX_INT64 = 7;
export const ONNX_FLOAT16 = 10;
export const EXTERNAL_LOCATION = 1;

export function toNumber(value: Int64 | undefined): number {
  if (value === undefined) return 0;
  return typeof value === "number" ? value : value.toNumber();
}

/**
 * Decodes an ONNX model with the official schema. Fields the schema lacks (newer ONNX versions)
 * would be dropped on re-encoding, so a model that does not re-encode to its own bytes is refused
 * before anything is edited.
 * @throws LowrankError CHECKPOINT_INVALID naming the file.
 */
export function decodeModel(bytes: Uint8Array, label: string, options: { checkRoundTrip?: boolean } = {}): ModelProto {
  if (bytes.byteLength === 0) throw new LowrankError("CHECKPOINT_INVALID", `${label}: not an ONNX model (the file is empty)`);
  const other = otherFormat(bytes);
  let model: ModelProto;
  try {
    model = ModelProtoType.decode(bytes) as unknown as ModelProto;
  } catch (error) {
    if (other) throw new LowrankError("CHECKPOINT_INVALID", `${label}: not an ONNX model (it looks like ${other})`);
    const why = (error as Error).message.split("\n")[0]!;
    // protobufjs says "index out of range" when a field runs past the end of the bytes.
    const shown = /index out of range/.test(why) ? "the file ends inside a protobuf field: truncated?" : why;
    throw new LowrankError("CHECKPOINT_INVALID", `${label}: not an ONNX model (${shown})`);
  }
  if (!model.graph || !Array.isArray(model.graph.node) || model.graph.node.length === 0) {
    throw new LowrankError("CHECKPOINT_INVALID", `${label}: not an ONNX model (${other ? `it looks like ${other}` : "no graph nodes"})`);
  }
  if (options.checkRoundTrip ?? true) {
    const again = encodeModel(model);
    if (!sameBytes(again, bytes)) {
      throw new LowrankError("CHECKPOINT_INVALID", `${label}: uses ONNX fields newer than the vendored onnx.proto (1.12); re-encoding would lose them`);
    }
  }
  return model;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Names the format of files often mistaken for ONNX models (renamed or misplaced), else undefined. */
function otherFormat(bytes: Uint8Array): string | undefined {
  const head = bytes.subarray(0, 16);
  const text = String.fromCharCode(...head.subarray(0, 4));
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  if (head.byteLength >= 10 && head[8] === 0x7b && view.getBigUint64(0, true) <= BigInt(bytes.byteLength - 8)) return "a safetensors file";
  if (text === "PK\x03\x04") return "a zip archive (a torch .bin / .pt checkpoint?)";
  const pickleProtocol = head[1];
  if (head[0] === 0x80 && pickleProtocol !== undefined && pickleProtocol >= 2 && pickleProtocol <= 5) return "a Python pickle";
  if (text === "GGUF") return "a GGUF file";
  return undefined;
}

export function encodeModel(model: ModelProto): Uint8Array {
  return ModelProtoType.encode(model as unknown as protobuf.Message).finish();
}

/** A new TensorProto message (so it encodes like decoded ones). */
export function newTensor(fields: Partial<TensorProto> & { name: string }): TensorProto {
  return TensorProtoType.create(fields) as unknown as TensorProto;
}

export function newNode(fields: Partial<NodeProto> & { name: string; op_type: string }): NodeProto {
  return NodeProtoType.create({ input: [], output: [], attribute: [], ...fields }) as unknown as NodeProto;
}

/** A float tensor graph input/output with named (symbolic) or fixed dims. */
export function floatValueInfo(name: string, dims: (number | string)[], elemType = ONNX_FLOAT): ValueInfoProto {
  // A plain object: protobufjs encodes exactly the fields present (fromObject would fill both
  // members of the dim_value / dim_param oneof).
  const dim = dims.map((d) => (typeof d === "number" ? { dim_value: d } : { dim_param: d }));
  return { name, type: { tensor_type: { elem_type: elemType, shape: { dim } } } } as ValueInfoProto;
}
