import { LowrankError } from "../../errors/lowrank-error.js";

/** Element types a safetensors file may hold (safetensors' own names). */
export const DTYPES = ["F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U64", "U32", "U16", "U8", "BOOL"] as const;
export type DType = (typeof DTYPES)[number];

export const DTYPE_BYTES: Readonly<Record<DType, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
};

/**
 * safetensors' internal dtype order (its Rust `Dtype` enum). PyTorch-written files list tensors by
 * this order, largest first, then by name.
 */
const RUST_DTYPE_RANK: Readonly<Record<DType, number>> = {
  BOOL: 0,
  U8: 1,
  I8: 2,
  I16: 5,
  U16: 6,
  F16: 7,
  BF16: 8,
  I32: 9,
  U32: 10,
  F32: 11,
  F64: 12,
  I64: 13,
  U64: 14,
};

/** Compares two entries the way the safetensors serializer orders them (dtype descending, then name). */
export function compareForLayout(a: { name: string; dtype: DType }, b: { name: string; dtype: DType }): number {
  const byType = RUST_DTYPE_RANK[b.dtype] - RUST_DTYPE_RANK[a.dtype];
  if (byType !== 0) return byType;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

export function isDType(value: unknown): value is DType {
  return typeof value === "string" && (DTYPES as readonly string[]).includes(value);
}

/** A tensor as raw little-endian bytes plus its dtype and shape. */
export interface Tensor {
  dtype: DType;
  shape: number[];
  data: Uint8Array;
}

export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

function floatToHalf(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half += 1;
    return sign | half;
  }
  let half = (e << 10) | (mant >> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half += 1;
  return sign | half;
}

function floatToBf16(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0]!;
  if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) return (x >>> 16) | 0x40;
  const rounded = x + 0x7fff + ((x >>> 16) & 1);
  return (rounded >>> 16) & 0xffff;
}

function view(data: Uint8Array): DataView {
  return new DataView(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * Widens (or narrows) a floating-point tensor's bytes into a new Float32Array.
 * F16 and BF16 widen exactly; F64 rounds to float32.
 * @throws LowrankError SHAPE_MISMATCH for a non-floating dtype.
 */
export function toFloat32(tensor: Tensor, label = "tensor"): Float32Array {
  const n = elementCount(tensor.shape);
  const out = new Float32Array(n);
  const dv = view(tensor.data);
  switch (tensor.dtype) {
    case "F32":
      new Uint8Array(out.buffer).set(tensor.data.subarray(0, n * 4));
      return out;
    case "F64":
      for (let i = 0; i < n; i++) out[i] = dv.getFloat64(i * 8, true);
      return out;
    case "F16":
      for (let i = 0; i < n; i++) out[i] = halfToFloat(dv.getUint16(i * 2, true));
      return out;
    case "BF16": {
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) bits[i] = dv.getUint16(i * 2, true) << 16;
      return out;
    }
    default:
      throw new LowrankError("SHAPE_MISMATCH", `${label}: dtype ${tensor.dtype} is not a floating-point type`);
  }
}

/** Encodes float32 values as `dtype` bytes (round to nearest even for F16/BF16). */
export function fromFloat32(values: Float32Array, dtype: DType, label = "tensor"): Uint8Array {
  const n = values.length;
  if (dtype === "F32") return new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + n * 4));
  const out = new Uint8Array(n * DTYPE_BYTES[dtype]);
  const dv = view(out);
  switch (dtype) {
    case "F64":
      for (let i = 0; i < n; i++) dv.setFloat64(i * 8, values[i]!, true);
      return out;
    case "F16":
      for (let i = 0; i < n; i++) dv.setUint16(i * 2, floatToHalf(values[i]!), true);
      return out;
    case "BF16":
      for (let i = 0; i < n; i++) dv.setUint16(i * 2, floatToBf16(values[i]!), true);
      return out;
    default:
      throw new LowrankError("SHAPE_MISMATCH", `${label}: cannot store floating-point values as ${dtype}`);
  }
}

/** A float32 tensor from values and shape. */
export function float32Tensor(values: Float32Array, shape: number[]): Tensor {
  return { dtype: "F32", shape: [...shape], data: fromFloat32(values, "F32") };
}

/** Reads integer tensor values (I64/I32/…/U8/BOOL) as plain numbers; I64 must fit a safe integer. */
export function toIntegers(tensor: Tensor, label = "tensor"): number[] {
  const n = elementCount(tensor.shape);
  const dv = view(tensor.data);
  const out = new Array<number>(n);
  const size = DTYPE_BYTES[tensor.dtype];
  for (let i = 0; i < n; i++) {
    const o = i * size;
    switch (tensor.dtype) {
      case "I64":
      case "U64": {
        const v = tensor.dtype === "I64" ? dv.getBigInt64(o, true) : dv.getBigUint64(o, true);
        if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) {
          throw new LowrankError("SHAPE_MISMATCH", `${label}: integer ${v} does not fit a JavaScript number`);
        }
        out[i] = Number(v);
        break;
      }
      case "I32":
        out[i] = dv.getInt32(o, true);
        break;
      case "U32":
        out[i] = dv.getUint32(o, true);
        break;
      case "I16":
        out[i] = dv.getInt16(o, true);
        break;
      case "U16":
        out[i] = dv.getUint16(o, true);
        break;
      case "I8":
        out[i] = dv.getInt8(o);
        break;
      case "U8":
      case "BOOL":
        out[i] = dv.getUint8(o);
        break;
      default:
        throw new LowrankError("SHAPE_MISMATCH", `${label}: dtype ${tensor.dtype} is not an integer type`);
    }
  }
  return out;
}

/** An I64 tensor from integers (e.g. token ids). */
export function int64Tensor(values: readonly number[], shape: number[]): Tensor {
  const data = new Uint8Array(values.length * 8);
  const dv = view(data);
  values.forEach((v, i) => dv.setBigInt64(i * 8, BigInt(v), true));
  return { dtype: "I64", shape: [...shape], data };
}
