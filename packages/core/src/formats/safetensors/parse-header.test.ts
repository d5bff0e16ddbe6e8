import { describe, expect, test } from "vitest";
import fc from "fast-check";
import { LowrankError } from "../../errors/lowrank-error.js";
import { captureLowrankError } from "../../testing/capture-error.js";
import { MAX_HEADER_BYTES, parseHeader, readHeaderLength } from "./parse-header.js";

const LABEL = "dir/model.safetensors";

function utf8(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

function prefix(n: bigint | number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(n), true);
  return out;
}

/** Runs fn and returns the LowrankError it throws, failing when it throws anything else or nothing. */
function invalid(fn: () => unknown): LowrankError {
  const e = captureLowrankError(fn);
  expect(e.code).toBe("SAFETENSORS_INVALID");
  expect(e.usage).toBe(true);
  expect(e.message.startsWith(`${LABEL}: not a valid safetensors file: `)).toBe(true);
  expect(e.message).not.toMatch(/[\r\n]/);
  return e;
}

describe("readHeaderLength", () => {
  test.each([
    ["a 0-byte file", new Uint8Array(0), 0, /file is 0 bytes, shorter than the 8-byte header length/],
    ["a 7-byte file", new Uint8Array(7), 7, /file is 7 bytes, shorter than the 8-byte header length/],
    ["a prefix shorter than 8 bytes", new Uint8Array(4), 100, /shorter than the 8-byte header length/],
    ["a header length beyond the file", prefix(100), 50, /header length 100 is beyond the end of the 50-byte file/],
    ["a header length one past the file", prefix(43), 50, /header length 43 is beyond the end/],
    ["a forged 150 MB header length", prefix(150_000_000), 64, /header length 150000000 exceeds the 100000000-byte limit/],
    ["a header length of 2^64 − 1", prefix(2n ** 64n - 1n), 64, /header length 18446744073709551615 exceeds/],
    ["a header length just over the limit in a huge file", prefix(MAX_HEADER_BYTES + 1), 2 ** 40, /exceeds the 100000000-byte limit/],
    ["a header length of 0", prefix(0), 64, /header length 0 is too small/],
    ["a header length of 1", prefix(1), 64, /header length 1 is too small/],
  ])("refuses %s", (_what, bytes, size, pattern) => {
    expect(invalid(() => readHeaderLength(bytes, size, LABEL)).message).toMatch(pattern);
  });

  test.each([
    [2, 10],
    [42, 50],
    [MAX_HEADER_BYTES, MAX_HEADER_BYTES + 8],
  ])("accepts a header length of %s in a %s-byte file", (n, size) => {
    expect(readHeaderLength(prefix(n), size, LABEL)).toBe(n);
  });

  test("reads the length from a prefix at a non-zero byte offset", () => {
    const buf = new Uint8Array(12);
    buf.set(prefix(16), 4);
    expect(readHeaderLength(buf.subarray(4), 100, LABEL)).toBe(16);
  });
});

describe("parseHeader", () => {
  const entry = (dtype: string, shape: unknown, offsets: unknown) => ({ dtype, shape, data_offsets: offsets });

  test("returns entries in data order with metadata and data start", () => {
    const text =
      JSON.stringify({
        __metadata__: { format: "pt" },
        b: entry("F32", [2, 2], [8, 24]),
        a: entry("I64", [1], [0, 8]),
        empty: entry("F16", [0, 3], [24, 24]),
      }) + "    ";
    const h = parseHeader(utf8(text), 24, LABEL);
    expect(h.metadata).toEqual({ format: "pt" });
    expect(h.dataStart).toBe(8 + utf8(text).byteLength);
    expect(h.entries).toEqual([
      { name: "a", dtype: "I64", shape: [1], begin: 0, end: 8 },
      { name: "b", dtype: "F32", shape: [2, 2], begin: 8, end: 24 },
      { name: "empty", dtype: "F16", shape: [0, 3], begin: 24, end: 24 },
    ]);
  });

  test("a header without metadata and a scalar tensor", () => {
    const h = parseHeader(utf8(`{"s":{"dtype":"F64","shape":[],"data_offsets":[0,8]}}`), 8, LABEL);
    expect(h.metadata).toBeUndefined();
    expect(h.entries).toEqual([{ name: "s", dtype: "F64", shape: [], begin: 0, end: 8 }]);
  });

  test("an empty object is a valid header with no tensors", () => {
    expect(parseHeader(utf8("{}      "), 0, LABEL).entries).toEqual([]);
  });

  test("a tensor named __proto__ is kept as data", () => {
    const h = parseHeader(utf8(`{"__proto__":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}`), 2, LABEL);
    expect(h.entries.map((e) => e.name)).toEqual(["__proto__"]);
  });

  const obj = (o: unknown) => utf8(JSON.stringify(o));
  test.each([
    ["non-UTF-8 bytes", Uint8Array.of(0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d), 0, /header is not valid UTF-8/],
    ["a truncated UTF-8 sequence", Uint8Array.of(0x7b, 0x7d, 0xc3), 0, /header is not valid UTF-8/],
    ["text that is not JSON", utf8("not json"), 0, /header is not valid JSON \(/],
    ["a truncated JSON object", utf8(`{"a":{"dtype":"F32"`), 0, /header is not valid JSON/],
    ["trailing text after the object", utf8(`{} x`), 0, /header is not valid JSON/],
    ["NUL padding instead of spaces", utf8(`{}\u0000\u0000`), 0, /header is not valid JSON/],
    [
      "duplicate tensor names",
      utf8(`{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"w":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`),
      2,
      /not valid JSON \(duplicate key "w"/,
    ],
    ["a JSON array", utf8(`[]`), 0, /header is not a JSON object/],
    ["a JSON string", utf8(`"x"`), 0, /header is not a JSON object/],
    ["null", utf8(`null`), 0, /header is not a JSON object/],
    ["an entry that is not an object", obj({ w: 5 }), 0, /entry "w" is not an object/],
    ["an unknown dtype", obj({ w: entry("F8", [1], [0, 1]) }), 1, /tensor "w" has unknown dtype "F8"/],
    ["a lowercase dtype", obj({ w: entry("f32", [1], [0, 4]) }), 4, /tensor "w" has unknown dtype "f32"/],
    ["a missing dtype", obj({ w: { shape: [1], data_offsets: [0, 4] } }), 4, /tensor "w" has unknown dtype undefined/],
    ["a negative dim", obj({ w: entry("F32", [-1, 4], [0, 16]) }), 16, /tensor "w" has an invalid shape \[-1,4\]/],
    ["a fractional dim", obj({ w: entry("F32", [1.5], [0, 6]) }), 6, /tensor "w" has an invalid shape/],
    ["a string dim", obj({ w: entry("F32", ["2"], [0, 8]) }), 8, /tensor "w" has an invalid shape/],
    ["a dim beyond 2^53", utf8(`{"w":{"dtype":"U8","shape":[9007199254740993],"data_offsets":[0,1]}}`), 1, /tensor "w" has an invalid shape/],
    ["a shape that is not an array", obj({ w: entry("F32", 4, [0, 16]) }), 16, /tensor "w" has an invalid shape 4/],
    ["data_offsets with one number", obj({ w: entry("F32", [1], [4]) }), 4, /tensor "w" has invalid data_offsets \[4\]/],
    ["negative data_offsets", obj({ w: entry("F32", [1], [-4, 0]) }), 4, /tensor "w" has invalid data_offsets/],
    ["fractional data_offsets", obj({ w: entry("U8", [1], [0.5, 1.5]) }), 4, /tensor "w" has invalid data_offsets/],
    ["missing data_offsets", obj({ w: { dtype: "F32", shape: [1] } }), 4, /tensor "w" has invalid data_offsets undefined/],
    ["end before begin", obj({ w: entry("F32", [1], [8, 4]) }), 8, /tensor "w" has data_offsets \[8, 4\] that end before they begin/],
    ["offsets past the data section", obj({ w: entry("F32", [2], [0, 8]) }), 4, /tensor "w" has data_offsets \[0, 8\] beyond the 4-byte data section/],
    ["offsets far past the data section", obj({ w: entry("U8", [1], [1e15, 1e15 + 1]) }), 4, /tensor "w" has data_offsets .* beyond the 4-byte data section/],
    [
      "a byte range shorter than shape × dtype",
      obj({ w: entry("F32", [2, 2], [0, 12]) }),
      16,
      /tensor "w" of shape \[2, 2\] and dtype F32 needs 16 bytes but data_offsets span 12/,
    ],
    [
      "a byte range longer than shape × dtype",
      obj({ w: entry("F16", [3], [0, 8]) }),
      8,
      /tensor "w" of shape \[3\] and dtype F16 needs 6 bytes but data_offsets span 8/,
    ],
    [
      "huge dims",
      obj({ w: entry("F32", [1e15, 1e15], [0, 4]) }),
      4,
      /tensor "w" of shape \[1000000000000000, 1000000000000000\] needs more bytes than the file holds/,
    ],
    [
      "dims whose product overflows 2^53",
      obj({ w: entry("F64", [2 ** 52, 2 ** 52, 2 ** 52], [0, 8]) }),
      8,
      /tensor "w" .* needs more bytes than the file holds/,
    ],
    [
      "overlapping tensors",
      obj({ a: entry("F32", [2], [0, 8]), b: entry("F32", [2], [4, 12]) }),
      12,
      /tensors "a" and "b" overlap \(data_offsets \[0, 8\] and \[4, 12\]\)/,
    ],
    ["two tensors on the same bytes", obj({ a: entry("U8", [4], [0, 4]), b: entry("I32", [1], [0, 4]) }), 4, /tensors "[ab]" and "[ab]" overlap/],
    ["a tensor inside another", obj({ big: entry("U8", [16], [0, 16]), small: entry("U8", [2], [4, 6]) }), 16, /tensors "big" and "small" overlap/],
    [
      "a gap between two tensors",
      obj({ a: entry("U8", [2], [0, 2]), b: entry("U8", [2], [4, 6]) }),
      6,
      /bytes \[2, 4\) of the data section belong to no tensor \(before tensor "b"\)/,
    ],
    [
      "a first tensor that does not start at 0",
      obj({ a: entry("U8", [2], [2, 4]) }),
      4,
      /bytes \[0, 2\) of the data section belong to no tensor \(before tensor "a"\)/,
    ],
    ["trailing bytes after the last tensor", obj({ a: entry("U8", [2], [0, 2]) }), 10, /the data section has 8 trailing bytes after the last tensor/],
    ["a data section with no tensor at all", obj({}), 3, /the data section has 3 trailing bytes/],
    [
      "unordered and overlapping tensors",
      obj({ b: entry("U8", [4], [2, 6]), a: entry("U8", [4], [0, 4]) }),
      6,
      /tensors "a" and "b" overlap \(data_offsets \[0, 4\] and \[2, 6\]\)/,
    ],
    ["__metadata__ with a number value", obj({ __metadata__: { format: "pt", epochs: 3 } }), 0, /`__metadata__\.epochs` is not a string/],
    ["__metadata__ with a null value", obj({ __metadata__: { note: null } }), 0, /`__metadata__\.note` is not a string/],
    ["__metadata__ with a nested object", obj({ __metadata__: { cfg: { r: "8" } } }), 0, /`__metadata__\.cfg` is not a string/],
    ["__metadata__ that is an array", obj({ __metadata__: ["pt"] }), 0, /`__metadata__` is not an object/],
    ["__metadata__ that is a string", obj({ __metadata__: "pt" }), 0, /`__metadata__` is not an object/],
  ])("refuses %s", (_what, bytes, dataBytes, pattern) => {
    expect(invalid(() => parseHeader(bytes as Uint8Array, dataBytes as number, LABEL)).message).toMatch(pattern as RegExp);
  });

  test("huge dims are refused quickly, without allocating", () => {
    const before = process.memoryUsage().arrayBuffers;
    const start = performance.now();
    for (let i = 0; i < 100; i++) {
      invalid(() => parseHeader(utf8(JSON.stringify({ w: entry("BF16", [1e15, 1e15, 1e15], [0, 2]) })), 2, LABEL));
    }
    expect(performance.now() - start).toBeLessThan(1000);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16 * 2 ** 20);
  });

  test("unordered offsets (header order is not data order) are accepted and each tensor keeps its own range", () => {
    const h = parseHeader(obj({ c: entry("F32", [1], [6, 10]), a: entry("U8", [2], [0, 2]), b: entry("I32", [1], [2, 6]) }), 10, LABEL);
    expect(h.entries.map((e) => [e.name, e.begin, e.end])).toEqual([
      ["a", 0, 2],
      ["b", 2, 6],
      ["c", 6, 10],
    ]);
  });

  test("zero-sized tensors at the same offset do not overlap", () => {
    const h = parseHeader(obj({ a: entry("F32", [0], [4, 4]), b: entry("F32", [0, 7], [4, 4]), c: entry("F32", [1], [0, 4]) }), 4, LABEL);
    expect(h.entries.map((e) => e.name)).toEqual(["c", "a", "b"]);
  });

  test("property: random JSON values never throw anything but SAFETENSORS_INVALID", () => {
    const dims = fc.oneof(fc.nat(8), fc.integer({ min: -3, max: 3 }), fc.constant(1e15), fc.double());
    const tensor = fc.record({
      dtype: fc.oneof(fc.constantFrom("F32", "I64", "U8", "BOOL", "F16", "X"), fc.anything()),
      shape: fc.oneof(fc.array(dims, { maxLength: 4 }), fc.anything()),
      data_offsets: fc.oneof(fc.tuple(fc.nat(64), fc.nat(64)), fc.array(fc.integer({ min: -5, max: 70 })), fc.anything()),
    });
    const header = fc.dictionary(fc.oneof(fc.string(), fc.constant("__metadata__")), fc.oneof(tensor, fc.anything()));
    fc.assert(
      fc.property(header, fc.nat(64), (h, dataBytes) => {
        try {
          const parsed = parseHeader(utf8(JSON.stringify(h)), dataBytes, LABEL);
          for (const e of parsed.entries) {
            expect(e.begin).toBeLessThanOrEqual(e.end);
            expect(e.end).toBeLessThanOrEqual(dataBytes);
          }
        } catch (error) {
          expect(error).toBeInstanceOf(LowrankError);
          expect((error as LowrankError).code).toBe("SAFETENSORS_INVALID");
        }
      }),
      { numRuns: 500 },
    );
  });
});
