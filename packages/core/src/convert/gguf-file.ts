import { readFile } from "node:fs/promises";
import { LowrankError } from "../errors/lowrank-error.js";
import { fromFloat32, toFloat32 } from "../formats/safetensors/dtype.js";

/** GGUF metadata value types (gguf-py's GGUFValueType). */
export const GGUF_VALUE = { UINT32: 4, INT32: 5, FLOAT32: 6, BOOL: 7, STRING: 8, ARRAY: 9, UINT64: 10 } as const;
/** The ggml tensor types lowrank writes and reads. */
export const GGML_TYPE = { F32: 0, F16: 1, Q8_0: 8, BF16: 30 } as const;
export type GgmlTypeName = keyof typeof GGML_TYPE;

export type GgufValue =
  | { type: "string"; value: string }
  | { type: "float32"; value: number }
  | { type: "uint32"; value: number }
  | { type: "uint32[]"; value: number[] };

/** A tensor of a GGUF file: its numpy-order shape and float32 values (stored as `type`). */
export interface GgufTensor {
  name: string;
  shape: number[];
  type: GgmlTypeName;
  values: Float32Array;
}

const ALIGNMENT = 32;
const pad = (n: number) => Math.ceil(n / ALIGNMENT) * ALIGNMENT;

/** Q8_0: blocks of 32 values along the last dimension, each an f16 scale d = max|x| / 127 and 32 int8 round(x / d), half away from zero. */
function quantizeQ8(values: Float32Array, label: string): Uint8Array {
  if (values.length % 32 !== 0) throw new LowrankError("USAGE", `${label}: q8_0 needs rows whose length is a multiple of 32`);
  const out = new Uint8Array((values.length / 32) * 34);
  const dv = new DataView(out.buffer);
  for (let b = 0; b < values.length / 32; b++) {
    let max = 0;
    for (let i = 0; i < 32; i++) max = Math.max(max, Math.abs(values[b * 32 + i]!));
    const d = max / 127;
    const stored = fromFloat32(Float32Array.of(d), "F16");
    out.set(stored, b * 34);
    const inv = d === 0 ? 0 : 1 / d;
    for (let i = 0; i < 32; i++) {
      const x = values[b * 32 + i]! * inv;
      dv.setInt8(b * 34 + 2 + i, Math.sign(x) * Math.floor(Math.abs(x) + 0.5));
    }
  }
  return out;
}

function dequantizeQ8(bytes: Uint8Array, count: number): Float32Array {
  const out = new Float32Array(count);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let b = 0; b < count / 32; b++) {
    const d = toFloat32({ dtype: "F16", shape: [1], data: bytes.subarray(b * 34, b * 34 + 2) })[0]!;
    for (let i = 0; i < 32; i++) out[b * 32 + i] = dv.getInt8(b * 34 + 2 + i) * d;
  }
  return out;
}

function encodeTensor(t: GgufTensor): Uint8Array {
  if (t.type === "Q8_0") return quantizeQ8(t.values, t.name);
  return fromFloat32(t.values, t.type, t.name);
}

const BYTES_PER_VALUE: Record<Exclude<GgmlTypeName, "Q8_0">, number> = { F32: 4, F16: 2, BF16: 2 };
const byteLength = (type: GgmlTypeName, count: number) => (type === "Q8_0" ? (count / 32) * 34 : count * BYTES_PER_VALUE[type]);

/**
 * A GGUF v3 file (llama.cpp's layout, as gguf-py writes it): header, metadata in the given order,
 * tensor infos (dimensions in ggml order, the reverse of numpy's), then the tensors' data, each
 * aligned to 32 bytes and in the order given.
 */
export function encodeGguf(metadata: ReadonlyArray<[string, GgufValue]>, tensors: readonly GgufTensor[]): Uint8Array {
  const parts: Uint8Array[] = [];
  const u32 = (v: number) => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v, true);
    parts.push(b);
  };
  const u64 = (v: number | bigint) => {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(v), true);
    parts.push(b);
  };
  const str = (s: string) => {
    const bytes = new TextEncoder().encode(s);
    u64(bytes.length);
    parts.push(bytes);
  };
  parts.push(new TextEncoder().encode("GGUF"));
  u32(3);
  u64(tensors.length);
  u64(metadata.length);
  for (const [key, v] of metadata) {
    str(key);
    if (v.type === "string") {
      u32(GGUF_VALUE.STRING);
      str(v.value);
    } else if (v.type === "float32") {
      u32(GGUF_VALUE.FLOAT32);
      const b = new Uint8Array(4);
      new DataView(b.buffer).setFloat32(0, v.value, true);
      parts.push(b);
    } else if (v.type === "uint32") {
      u32(GGUF_VALUE.UINT32);
      u32(v.value);
    } else {
      u32(GGUF_VALUE.ARRAY);
      u32(GGUF_VALUE.UINT32);
      u64(v.value.length);
      for (const x of v.value) u32(x);
    }
  }
  const data = tensors.map(encodeTensor);
  let offset = 0;
  tensors.forEach((t, i) => {
    str(t.name);
    u32(t.shape.length);
    for (const d of [...t.shape].reverse()) u64(d);
    u32(GGML_TYPE[t.type]);
    u64(offset);
    offset += pad(data[i]!.length);
  });
  const header = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(pad(header) + offset);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  at = pad(header);
  for (const d of data) {
    out.set(d, at);
    at += pad(d.length);
  }
  return out;
}

/**
 * Reads a GGUF file's metadata (strings, numbers, arrays of numbers or strings) and its F32 / F16 /
 * BF16 / Q8_0 tensors as float32 with numpy-order shapes.
 * @throws LowrankError CHECKPOINT_INVALID naming the file for anything else or a truncated file.
 */
export async function readGguf(file: string): Promise<{ metadata: Map<string, unknown>; tensors: GgufTensor[] }> {
  const bytes = await readFile(file);
  const fail = (why: string): never => {
    throw new LowrankError("CHECKPOINT_INVALID", `${file}: ${why}`);
  };
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  const need = (n: number) => {
    if (at + n > bytes.length) fail("the file ends early (truncated GGUF)");
  };
  const u32 = () => (need(4), (at += 4), dv.getUint32(at - 4, true));
  const u64 = () => (need(8), (at += 8), Number(dv.getBigUint64(at - 8, true)));
  const str = () => {
    const n = u64();
    need(n);
    at += n;
    return new TextDecoder().decode(bytes.subarray(at - n, at));
  };
  if (bytes.length < 4 || new TextDecoder().decode(bytes.subarray(0, 4)) !== "GGUF") fail("not a GGUF file (no GGUF magic)");
  at = 4;
  const version = u32();
  if (version !== 2 && version !== 3) fail(`GGUF version ${version} is not supported (2 or 3)`);
  const tensorCount = u64();
  const kvCount = u64();
  const scalar = (type: number): unknown => {
    switch (type) {
      case 0:
        return (need(1), (at += 1), dv.getUint8(at - 1));
      case 1:
        return (need(1), (at += 1), dv.getInt8(at - 1));
      case 2:
        return (need(2), (at += 2), dv.getUint16(at - 2, true));
      case 3:
        return (need(2), (at += 2), dv.getInt16(at - 2, true));
      case 4:
        return u32();
      case 5:
        return (need(4), (at += 4), dv.getInt32(at - 4, true));
      case 6:
        return (need(4), (at += 4), dv.getFloat32(at - 4, true));
      case 7:
        return (need(1), (at += 1), dv.getUint8(at - 1) !== 0);
      case 8:
        return str();
      case 10:
        return u64();
      case 11:
        return (need(8), (at += 8), Number(dv.getBigInt64(at - 8, true)));
      case 12:
        return (need(8), (at += 8), dv.getFloat64(at - 8, true));
      default:
        return fail(`unknown metadata value type ${type}`);
    }
  };
  const metadata = new Map<string, unknown>();
  for (let i = 0; i < kvCount; i++) {
    const key = str();
    const type = u32();
    if (type === GGUF_VALUE.ARRAY) {
      const elem = u32();
      const n = u64();
      metadata.set(
        key,
        Array.from({ length: n }, () => scalar(elem)),
      );
    } else metadata.set(key, scalar(type));
  }
  const infos = Array.from({ length: tensorCount }, () => {
    const name = str();
    const dims = Array.from({ length: u32() }, () => u64());
    return { name, shape: dims.reverse(), type: u32(), offset: u64() };
  });
  const alignment = typeof metadata.get("general.alignment") === "number" ? (metadata.get("general.alignment") as number) : ALIGNMENT;
  const start = Math.ceil(at / alignment) * alignment;
  const names = Object.fromEntries(Object.entries(GGML_TYPE).map(([k, v]) => [v, k])) as Record<number, GgmlTypeName>;
  const tensors = infos.map((info): GgufTensor => {
    const type = names[info.type] ?? fail(`tensor "${info.name}" has ggml type ${info.type}; lowrank reads f32, f16, bf16 and q8_0`);
    const count = info.shape.reduce((a, b) => a * b, 1);
    const from = start + info.offset;
    const length = byteLength(type, count);
    if (from + length > bytes.length) fail(`tensor "${info.name}" runs past the end of the file`);
    const raw = bytes.subarray(from, from + length);
    const values = type === "Q8_0" ? dequantizeQ8(raw, count) : toFloat32({ dtype: type, shape: info.shape, data: raw }, info.name);
    return { name: info.name, shape: info.shape, type, values };
  });
  return { metadata, tensors };
}
