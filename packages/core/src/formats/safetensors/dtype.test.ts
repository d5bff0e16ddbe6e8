import { describe, expect, test } from "vitest";
import fc from "fast-check";
import { captureLowrankError } from "../../testing/capture-error.js";
import {
  compareForLayout,
  DTYPE_BYTES,
  DTYPES,
  elementCount,
  float32Tensor,
  fromFloat32,
  int64Tensor,
  isDType,
  toFloat32,
  toIntegers,
  type DType,
  type Tensor,
} from "./dtype.js";

/** Little-endian uint16 bytes of the given bit patterns. */
function u16Bytes(bits: number[]): Uint8Array {
  const out = new Uint8Array(bits.length * 2);
  const dv = new DataView(out.buffer);
  bits.forEach((b, i) => dv.setUint16(i * 2, b, true));
  return out;
}

function readU16(bytes: Uint8Array): number[] {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return Array.from({ length: bytes.byteLength / 2 }, (_, i) => dv.getUint16(i * 2, true));
}

function widen(dtype: "F16" | "BF16", bits: number): number {
  return toFloat32({ dtype, shape: [1], data: u16Bytes([bits]) })[0]!;
}

function narrow(dtype: "F16" | "BF16", value: number): number {
  return readU16(fromFloat32(Float32Array.of(value), dtype))[0]!;
}

function f32Bits(value: number): number {
  return new Uint32Array(Float32Array.of(value).buffer)[0]!;
}

function expectLowrankError(fn: () => unknown, code: string, pattern?: RegExp): void {
  const e = captureLowrankError(fn);
  expect(e.code).toBe(code);
  if (pattern) expect(e.message).toMatch(pattern);
}

describe("F16 widening", () => {
  test.each([
    [0x0000, 0],
    [0x8000, -0],
    [0x0001, 2 ** -24], // smallest subnormal
    [0x8001, -(2 ** -24)],
    [0x0200, 2 ** -15], // subnormal, top fraction bit
    [0x03ff, 1023 * 2 ** -24], // largest subnormal
    [0x0400, 2 ** -14], // smallest normal
    [0x3c00, 1],
    [0x3c01, 1 + 2 ** -10],
    [0xc000, -2],
    [0x3555, 0.333251953125],
    [0x7bff, 65504], // largest finite
    [0x7c00, Infinity],
    [0xfc00, -Infinity],
  ])("bits %s widen to %s", (bits, expected) => {
    expect(Object.is(widen("F16", bits), expected)).toBe(true);
  });

  test.each([0x7c01, 0x7e00, 0xfe00, 0x7fff])("bits %s widen to NaN", (bits) => {
    expect(widen("F16", bits)).toBeNaN();
  });
});

describe("BF16 widening", () => {
  test.each([
    [0x0000, 0],
    [0x8000, -0],
    [0x0001, 2 ** -133], // float32 subnormal
    [0x007f, 127 * 2 ** -133], // largest subnormal
    [0x0080, 2 ** -126], // smallest normal
    [0x3f80, 1],
    [0xc020, -2.5],
    [0x4049, 3.140625],
    [0x7f7f, 3.3895313892515355e38], // largest finite
    [0x7f80, Infinity],
    [0xff80, -Infinity],
  ])("bits %s widen to %s", (bits, expected) => {
    expect(Object.is(widen("BF16", bits), expected)).toBe(true);
  });

  test.each([0x7fc0, 0x7f81, 0xffc0])("bits %s widen to NaN", (bits) => {
    expect(widen("BF16", bits)).toBeNaN();
  });
});

describe("exhaustive 16-bit round trip", () => {
  test.each(["F16", "BF16"] as const)("every non-NaN %s pattern survives widen → narrow", (dtype) => {
    const all = Array.from({ length: 65536 }, (_, i) => i);
    const widened = toFloat32({ dtype, shape: [65536], data: u16Bytes(all) });
    const back = readU16(fromFloat32(widened, dtype));
    const mismatches = all.filter((b) => !Number.isNaN(widened[b]) && back[b] !== b);
    expect(mismatches).toEqual([]);
    // NaN stays NaN (payload may be canonicalised).
    const nanBack = all.filter((b) => Number.isNaN(widened[b])).map((b) => back[b]!);
    expect(nanBack.length).toBeGreaterThan(0);
    expect(nanBack.every((b) => Number.isNaN(widen(dtype, b)))).toBe(true);
  });
});

describe("fromFloat32 rounds to nearest, ties to even", () => {
  // Expected bits computed with numpy (float32 → float16) and the safetensors/PyTorch bf16 rounding.
  test.each([
    [1.0, 0x3c00],
    [0.1, 0x2e66],
    [-2.5, 0xc100],
    [0.333333, 0x3555],
    [65504, 0x7bff],
    [65519, 0x7bff], // below the overflow midpoint
    [65520, 0x7c00], // exact midpoint to infinity: ties to even (infinity)
    [1e6, 0x7c00],
    [1 + 2 ** -11, 0x3c00], // tie between 0x3c00 and 0x3c01: even
    [1 + 3 * 2 ** -11, 0x3c02], // tie between 0x3c01 and 0x3c02: even
    [2 ** -24, 0x0001],
    [2 ** -25, 0x0000], // half the smallest subnormal: ties to zero
    [3 * 2 ** -25, 0x0002], // tie between subnormals 1 and 2: even
    [2.980232594040899e-8, 0x0001], // just above 2^-25
    [2 ** -26, 0x0000],
    [2 ** -14, 0x0400],
    [2 ** -14 - 2 ** -25, 0x0400], // tie between largest subnormal and smallest normal
    [-0, 0x8000],
    [Infinity, 0x7c00],
    [-Infinity, 0xfc00],
  ])("F16(%s) = %s", (value, bits) => {
    expect(narrow("F16", value)).toBe(bits);
  });

  test.each([
    [1.0, 0x3f80],
    [0.1, 0x3dcd],
    [-2.5, 0xc020],
    [3.14159, 0x4049],
    [1 + 2 ** -8, 0x3f80], // tie: even
    [1 + 3 * 2 ** -8, 0x3f82], // tie: even
    [1 + 2 ** -8 + 2 ** -20, 0x3f81], // just above the tie
    [3.4e38, 0x7f80], // rounds past the largest finite
    [1e-40, 0x0001], // float32 subnormal
    [-0, 0x8000],
    [Infinity, 0x7f80],
    [-Infinity, 0xff80],
  ])("BF16(%s) = %s", (value, bits) => {
    expect(narrow("BF16", value)).toBe(bits);
  });

  test.each(["F16", "BF16"] as const)("NaN stays NaN in %s", (dtype) => {
    expect(widen(dtype, narrow(dtype, NaN))).toBeNaN();
    // a float32 NaN whose payload sits only in the low bits must not become infinity
    const lowPayloadNaN = new Float32Array(new Uint32Array([0x7f800001]).buffer)[0]!;
    expect(widen(dtype, narrow(dtype, lowPayloadNaN))).toBeNaN();
  });

  /**
   * Independent oracle: the nearest representable 16-bit value by binary search over the sorted
   * positive finite values, ties to the even bit pattern, overflow past the last midpoint.
   */
  function oracle(dtype: "F16" | "BF16", value: number): number {
    const maxBits = dtype === "F16" ? 0x7bff : 0x7f7f;
    const infBits = dtype === "F16" ? 0x7c00 : 0x7f80;
    const sign = value < 0 || Object.is(value, -0) ? 0x8000 : 0;
    const x = Math.abs(value);
    const top = widen(dtype, maxBits);
    const ulpTop = top - widen(dtype, maxBits - 1);
    if (x >= top + ulpTop / 2) {
      // at the midpoint, even rounding picks the infinity pattern (maxBits is odd)
      return sign | infBits;
    }
    let lo = 0;
    let hi = maxBits;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (widen(dtype, mid) <= x) lo = mid;
      else hi = mid - 1;
    }
    if (lo === maxBits) return sign | lo;
    const below = widen(dtype, lo);
    const above = widen(dtype, lo + 1);
    const dBelow = x - below;
    const dAbove = above - x;
    const pick = dBelow < dAbove ? lo : dAbove < dBelow ? lo + 1 : lo % 2 === 0 ? lo : lo + 1;
    return sign | pick;
  }

  test.each(["F16", "BF16"] as const)("%s agrees with a nearest-value oracle on random float32", (dtype) => {
    fc.assert(
      fc.property(fc.float({ noNaN: true, noDefaultInfinity: true }), (v) => {
        expect(narrow(dtype, v)).toBe(oracle(dtype, v));
      }),
      { numRuns: 3000 },
    );
  });

  test("F32 passes bits through and F64 stores exact float32 values", () => {
    const values = Float32Array.of(1.5, -0, 2 ** -149, 3.4028234663852886e38);
    const f32 = fromFloat32(values, "F32");
    expect(Array.from(new Uint32Array(f32.buffer))).toEqual(Array.from(values, f32Bits));
    const f64 = fromFloat32(values, "F64");
    expect(Array.from(new Float64Array(f64.buffer))).toEqual(Array.from(values));
  });

  test("fromFloat32 reads a subarray view, not its whole buffer", () => {
    const big = Float32Array.of(9, 1, 2, 9);
    const bytes = fromFloat32(big.subarray(1, 3), "F32");
    expect(Array.from(new Float32Array(bytes.buffer))).toEqual([1, 2]);
  });

  test.each(["I32", "U8", "BOOL", "I64"] as DType[])("refuses to encode floats as %s", (dtype) => {
    expectLowrankError(() => fromFloat32(Float32Array.of(1), dtype, "w"), "SHAPE_MISMATCH", /^w: .*\bas (I32|U8|BOOL|I64)$/);
  });
});

describe("toFloat32", () => {
  test("F64 rounds to float32", () => {
    const data = new Uint8Array(16);
    const dv = new DataView(data.buffer);
    dv.setFloat64(0, 0.1, true);
    dv.setFloat64(8, 1e300, true);
    const out = toFloat32({ dtype: "F64", shape: [2], data });
    expect(out[0]).toBe(Math.fround(0.1));
    expect(out[1]).toBe(Infinity);
  });

  test.each(["F32", "F16", "BF16", "F64"] as const)("%s data at an unaligned byte offset", (dtype) => {
    const values = Float32Array.of(1, -2.5, 0.5);
    const encoded = fromFloat32(values, dtype);
    const backing = new Uint8Array(encoded.byteLength + 3);
    backing.set(encoded, 1);
    const out = toFloat32({ dtype, shape: [3], data: backing.subarray(1, 1 + encoded.byteLength) });
    expect(Array.from(out)).toEqual([1, -2.5, 0.5]);
  });

  test.each(["I64", "I32", "U8", "BOOL"] as DType[])("%s is not floating point", (dtype) => {
    const t: Tensor = { dtype, shape: [1], data: new Uint8Array(DTYPE_BYTES[dtype]) };
    expectLowrankError(() => toFloat32(t, "my.tensor"), "SHAPE_MISMATCH", /^my\.tensor: dtype \w+ is not a floating-point type$/);
  });

  test("float32Tensor copies values and shape", () => {
    const shape = [2, 1];
    const values = Float32Array.of(3, 4);
    const t = float32Tensor(values, shape);
    shape[0] = 99;
    values[0] = 99;
    expect(t.dtype).toBe("F32");
    expect(t.shape).toEqual([2, 1]);
    expect(Array.from(toFloat32(t))).toEqual([3, 4]);
  });
});

describe("toIntegers", () => {
  function i64(values: bigint[]): Tensor {
    const data = new Uint8Array(values.length * 8);
    const dv = new DataView(data.buffer);
    values.forEach((v, i) => dv.setBigInt64(i * 8, v, true));
    return { dtype: "I64", shape: [values.length], data };
  }

  test("I64 within the safe range is exact", () => {
    const max = BigInt(Number.MAX_SAFE_INTEGER);
    expect(toIntegers(i64([0n, -1n, 50256n, max, -max]))).toEqual([0, -1, 50256, Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER]);
  });

  test.each([2n ** 53n, -(2n ** 53n), 2n ** 63n - 1n, -(2n ** 63n)])("I64 %s does not fit a number", (v) => {
    expectLowrankError(() => toIntegers(i64([1n, v]), "ids"), "SHAPE_MISMATCH", new RegExp(`^ids: integer ${v} does not fit a JavaScript number$`));
  });

  test("U64 beyond 2^53 is refused, within it is read", () => {
    const data = new Uint8Array(16);
    const dv = new DataView(data.buffer);
    dv.setBigUint64(0, 7n, true);
    dv.setBigUint64(8, 2n ** 64n - 1n, true);
    expect(toIntegers({ dtype: "U64", shape: [1], data: data.subarray(0, 8) })).toEqual([7]);
    expectLowrankError(() => toIntegers({ dtype: "U64", shape: [2], data }), "SHAPE_MISMATCH");
  });

  test.each([
    ["I32", [-2147483648, 2147483647, -1]],
    ["U32", [0, 4294967295, 1]],
    ["I16", [-32768, 32767, -1]],
    ["U16", [0, 65535, 1]],
    ["I8", [-128, 127, -1]],
    ["U8", [0, 255, 1]],
    ["BOOL", [0, 1, 1]],
  ] as [DType, number[]][])("%s reads signed/unsigned extremes", (dtype, values) => {
    const size = DTYPE_BYTES[dtype];
    const data = new Uint8Array(values.length * size);
    const dv = new DataView(data.buffer);
    values.forEach((v, i) => {
      const o = i * size;
      if (size === 4) dv.setUint32(o, v >>> 0, true);
      else if (size === 2) dv.setUint16(o, v & 0xffff, true);
      else dv.setUint8(o, v & 0xff);
    });
    expect(toIntegers({ dtype, shape: [values.length], data })).toEqual(values);
  });

  test.each(["F32", "F16", "BF16", "F64"] as DType[])("%s is not an integer type", (dtype) => {
    expectLowrankError(
      () => toIntegers({ dtype, shape: [1], data: new Uint8Array(DTYPE_BYTES[dtype]) }, "x"),
      "SHAPE_MISMATCH",
      /^x: dtype \w+ is not an integer type$/,
    );
  });

  test("int64Tensor round-trips through toIntegers", () => {
    const t = int64Tensor([0, 1, -7, 2 ** 40], [2, 2]);
    expect(t.dtype).toBe("I64");
    expect(t.shape).toEqual([2, 2]);
    expect(t.data.byteLength).toBe(32);
    expect(toIntegers(t)).toEqual([0, 1, -7, 2 ** 40]);
  });
});

describe("dtype tables", () => {
  test("isDType accepts exactly the safetensors names", () => {
    expect(DTYPES.every((d) => isDType(d))).toBe(true);
    for (const bad of ["f32", "F8_E4M3", "float32", "", 4, null, undefined]) expect(isDType(bad)).toBe(false);
  });

  test.each([
    [[], 1],
    [[0], 0],
    [[3, 4], 12],
    [[2, 0, 5], 0],
    [[2, 3, 4], 24],
  ])("elementCount(%j) = %s", (shape, n) => {
    expect(elementCount(shape)).toBe(n);
  });

  test("layout order is safetensors' dtype order, largest rank first, then name", () => {
    const entries = [
      { name: "b", dtype: "F32" as DType },
      { name: "a", dtype: "F32" as DType },
      { name: "z", dtype: "I64" as DType },
      { name: "m", dtype: "BOOL" as DType },
      { name: "h", dtype: "F16" as DType },
      { name: "g", dtype: "BF16" as DType },
      { name: "d", dtype: "F64" as DType },
      { name: "u", dtype: "U64" as DType },
      { name: "i", dtype: "I32" as DType },
      { name: "s", dtype: "I16" as DType },
      { name: "c", dtype: "I8" as DType },
      { name: "k", dtype: "U8" as DType },
    ];
    expect([...entries].sort(compareForLayout).map((e) => `${e.dtype}:${e.name}`)).toEqual([
      "U64:u",
      "I64:z",
      "F64:d",
      "F32:a",
      "F32:b",
      "I32:i",
      "BF16:g",
      "F16:h",
      "I16:s",
      "I8:c",
      "U8:k",
      "BOOL:m",
    ]);
  });
});
