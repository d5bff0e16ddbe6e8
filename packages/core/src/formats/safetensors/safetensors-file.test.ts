import { afterAll, beforeAll, describe, expect, test, vi } from "vitest";
import fc from "fast-check";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { LowrankError } from "../../errors/lowrank-error.js";
import { captureLowrankRejection } from "../../testing/capture-error.js";
import { requireFixture } from "../../testing/fixtures.js";
import { fromFloat32, int64Tensor, toIntegers, type Tensor } from "./dtype.js";
import { readSafetensors, SafetensorsFile } from "./safetensors-file.js";
import { serializeSafetensors } from "./write-safetensors.js";

let dir: string;
let counter = 0;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "lowrank-st-file-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function fileWith(bytes: Uint8Array | string): Promise<string> {
  const p = path.join(dir, `f${counter++}.safetensors`);
  await writeFile(p, bytes);
  return p;
}

/** A file of an 8-byte length prefix, the header text, then `dataBytes` zero bytes. */
function rawFile(header: string, dataBytes = 0, forgedLength?: bigint): Uint8Array {
  const json = Buffer.from(header, "utf8");
  const out = new Uint8Array(8 + json.byteLength + dataBytes);
  new DataView(out.buffer).setBigUint64(0, forgedLength ?? BigInt(json.byteLength), true);
  out.set(json, 8);
  return out;
}

async function openError(p: string): Promise<LowrankError> {
  return captureLowrankRejection(SafetensorsFile.open(p).then((f) => f.close()));
}

function f32(values: number[], shape: number[]): Tensor {
  return { dtype: "F32", shape, data: fromFloat32(Float32Array.from(values), "F32") };
}

/** A small valid file: I64, F32, F16 and U8 tensors plus metadata. */
function sampleBytes(): Uint8Array {
  const tensors = new Map<string, Tensor>([
    ["ids", int64Tensor([1, 2, 3, 50256], [2, 2])],
    ["w", f32([0.5, -1, 2, 4, 8, 16], [2, 3])],
    ["h", { dtype: "F16", shape: [3], data: fromFloat32(Float32Array.of(1, 2, 3), "F16") }],
    ["mask", { dtype: "U8", shape: [4], data: Uint8Array.of(1, 1, 0, 1) }],
  ]);
  return serializeSafetensors(tensors, { format: "pt" });
}

describe("SafetensorsFile.open on hostile files", () => {
  const t = (name: string, dtype: string, shape: unknown, offsets: unknown) => `"${name}":${JSON.stringify({ dtype, shape, data_offsets: offsets })}`;
  test.each([
    ["an empty file", () => new Uint8Array(0), /file is 0 bytes, shorter than the 8-byte header length/],
    ["a 5-byte file", () => Uint8Array.of(1, 0, 0, 0, 0), /file is 5 bytes, shorter than the 8-byte header length/],
    ["a header length beyond the file", () => rawFile("{}", 0, 4096n), /header length 4096 is beyond the end of the 10-byte file/],
    ["a forged 200 MB header length", () => rawFile("{}", 0, 200_000_000n), /header length 200000000 exceeds the 100000000-byte limit/],
    ["a forged 2^63 header length", () => rawFile("{}", 0, 2n ** 63n), /header length 9223372036854775808 exceeds/],
    ["a non-UTF-8 header", () => rawFile('{"ab":1}').map((b, i) => (i === 10 ? 0xff : b)), /header is not valid UTF-8/],
    ["a non-JSON header", () => rawFile("hello, world"), /header is not valid JSON/],
    ["duplicate tensor names", () => rawFile(`{${t("w", "U8", [1], [0, 1])},${t("w", "U8", [1], [1, 2])}}`, 2), /duplicate key "w"/],
    ["offsets out of range", () => rawFile(`{${t("w", "F32", [4], [0, 16])}}`, 8), /tensor "w" has data_offsets \[0, 16\] beyond the 8-byte data section/],
    ["overlapping offsets", () => rawFile(`{${t("a", "F32", [2], [0, 8])},${t("b", "F32", [2], [4, 12])}}`, 12), /tensors "a" and "b" overlap/],
    ["end before begin", () => rawFile(`{${t("w", "U8", [0], [4, 2])}}`, 4), /tensor "w" has data_offsets \[4, 2\] that end before they begin/],
    [
      "a byte range that does not match shape × dtype",
      () => rawFile(`{${t("w", "I64", [2], [0, 8])}}`, 16),
      /tensor "w" of shape \[2\] and dtype I64 needs 16 bytes but data_offsets span 8/,
    ],
    ["an unknown dtype", () => rawFile(`{${t("w", "Q4", [2], [0, 1])}}`, 1), /tensor "w" has unknown dtype "Q4"/],
    ["negative dims", () => rawFile(`{${t("w", "F32", [-2, -2], [0, 16])}}`, 16), /tensor "w" has an invalid shape \[-2,-2\]/],
    [
      "huge dims",
      () => rawFile(`{${t("w", "F32", [1e15, 1e15], [0, 16])}}`, 16),
      /tensor "w" of shape \[1000000000000000, 1000000000000000\] needs more bytes than the file holds/,
    ],
    ["non-string metadata", () => rawFile(`{"__metadata__":{"format":"pt","r":8}}`), /`__metadata__\.r` is not a string/],
    ["a truncated header", () => rawFile(`{${t("w", "U8", [1], [0, 1])}}`, 1).subarray(0, 20), /header length \d+ is beyond the end of the 20-byte file/],
    ["a header cut inside its JSON", () => rawFile(`{${t("w", "U8", [1], [0, 1])}}`, 0, 20n), /header is not valid JSON/],
    ["unordered, overlapping offsets", () => rawFile(`{${t("b", "U8", [4], [2, 6])},${t("a", "U8", [4], [0, 4])}}`, 6), /tensors "a" and "b" overlap/],
    [
      "a gap between tensors",
      () => rawFile(`{${t("b", "U8", [2], [4, 6])},${t("a", "U8", [2], [0, 2])}}`, 6),
      /bytes \[2, 4\) of the data section belong to no tensor/,
    ],
    ["trailing bytes after the data", () => rawFile(`{${t("w", "U8", [2], [0, 2])}}`, 64), /the data section has 62 trailing bytes/],
    ["a dim beyond 2^53", () => rawFile(`{"w":{"dtype":"U8","shape":[18446744073709551616],"data_offsets":[0,1]}}`, 1), /tensor "w" has an invalid shape/],
  ])("refuses %s with a one-line SAFETENSORS_INVALID naming the file", async (_what, make, pattern) => {
    const p = await fileWith(make());
    const e = await openError(p);
    expect(e.code).toBe("SAFETENSORS_INVALID");
    expect(e.message.startsWith(`${p}: `)).toBe(true);
    expect(e.message).toMatch(pattern);
    expect(e.message).not.toMatch(/[\r\n]/);
  });

  test("a forged 100 MB+ header length in a small file allocates nothing large", async () => {
    const p = await fileWith(rawFile("{}", 0, BigInt(99_999_999 + 2)));
    const before = process.memoryUsage().arrayBuffers;
    const e = await openError(p);
    expect(e.code).toBe("SAFETENSORS_INVALID");
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(8 * 2 ** 20);
  });

  test("a header length just under the limit but beyond a small file allocates nothing large", async () => {
    const p = await fileWith(rawFile("{}", 0, 99_000_000n));
    const before = process.memoryUsage().arrayBuffers;
    const e = await openError(p);
    expect(e.code).toBe("SAFETENSORS_INVALID");
    expect(e.message).toMatch(/header length 99000000 is beyond the end of the 10-byte file/);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(8 * 2 ** 20);
  });

  test("a missing file is an IO_ERROR naming the path", async () => {
    const p = path.join(dir, "does-not-exist.safetensors");
    const e = await openError(p);
    expect(e.code).toBe("IO_ERROR");
    expect(e.message).toBe(`${p}: cannot open (ENOENT)`);
  });
});

describe("SafetensorsFile reading", () => {
  test("a header listing tensors out of data order reads each tensor from its own range", async () => {
    const header =
      `{"c":{"dtype":"U8","shape":[2],"data_offsets":[5,7]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},` +
      `"b":{"dtype":"I32","shape":[1],"data_offsets":[1,5]}}`;
    const bytes = rawFile(header, 7);
    bytes.set([9, 1, 0, 0, 0, 7, 8], bytes.length - 7);
    const file = await SafetensorsFile.open(await fileWith(bytes));
    try {
      expect(file.names()).toEqual(["a", "b", "c"]);
      expect(Array.from((await file.read("a")).data)).toEqual([9]);
      expect(toIntegers(await file.read("b"))).toEqual([1]);
      expect(Array.from((await file.read("c")).data)).toEqual([7, 8]);
    } finally {
      await file.close();
    }
  });

  test("lists names in data order and reads each tensor", async () => {
    const file = await SafetensorsFile.open(await fileWith(sampleBytes()));
    try {
      expect(file.names()).toEqual(["ids", "w", "h", "mask"]); // I64, F32, F16, U8
      expect(file.header.metadata).toEqual({ format: "pt" });
      expect(file.has("w")).toBe(true);
      expect(file.has("nope")).toBe(false);
      expect(file.entry("w")).toMatchObject({ dtype: "F32", shape: [2, 3], begin: 32, end: 56 });
      expect(toIntegers(await file.read("ids"))).toEqual([1, 2, 3, 50256]);
      expect(Array.from(await file.readFloat32("w"))).toEqual([0.5, -1, 2, 4, 8, 16]);
      expect(Array.from(await file.readFloat32("h"))).toEqual([1, 2, 3]);
      expect(Array.from((await file.read("mask")).data)).toEqual([1, 1, 0, 1]);
    } finally {
      await file.close();
    }
  });

  test("a returned shape is a copy", async () => {
    const file = await SafetensorsFile.open(await fileWith(sampleBytes()));
    try {
      const t = await file.read("w");
      t.shape[0] = 99;
      expect((await file.read("w")).shape).toEqual([2, 3]);
    } finally {
      await file.close();
    }
  });

  test("an unknown name or a non-float readFloat32 is refused naming the file and tensor", async () => {
    const p = await fileWith(sampleBytes());
    const file = await SafetensorsFile.open(p);
    try {
      expect(() => file.entry("nope")).toThrow(expect.objectContaining({ code: "SAFETENSORS_INVALID", message: `${p}: no tensor named "nope"` }));
      await expect(file.read("nope")).rejects.toMatchObject({ code: "SAFETENSORS_INVALID" });
      await expect(file.readFloat32("ids")).rejects.toMatchObject({
        code: "SHAPE_MISMATCH",
        message: `${p}: tensor "ids": dtype I64 is not a floating-point type`,
      });
    } finally {
      await file.close();
    }
  });

  test("readSafetensors reads the cases fixture with its I64 and F32 tensors", async () => {
    const p = requireFixture("cases", "gpt2-tiny-lora.safetensors");
    const { tensors, metadata } = await readSafetensors(p);
    expect(metadata).toEqual({ format: "pt" });
    const ids = tensors.get("input_ids")!;
    expect(ids).toMatchObject({ dtype: "I64", shape: [2, 12] });
    expect(toIntegers(ids)).toHaveLength(24);
    expect(tensors.get("base_logits")).toMatchObject({ dtype: "F32", shape: [2, 12, 512] });
    const names = [...tensors.keys()];
    expect(names.indexOf("attention_mask")).toBeLessThan(names.indexOf("adapted_logits"));
  });
});

describe("property: corrupted files", () => {
  const valid = sampleBytes();

  type Mutation = { kind: "set"; at: number; value: number } | { kind: "truncate"; length: number } | { kind: "length"; value: bigint };
  const mutation: fc.Arbitrary<Mutation> = fc.oneof(
    fc.record({ kind: fc.constant("set" as const), at: fc.nat(valid.length - 1), value: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ kind: fc.constant("truncate" as const), length: fc.nat(valid.length) }),
    fc.record({ kind: fc.constant("length" as const), value: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }) }),
  );

  function apply(bytes: Uint8Array, mutations: Mutation[]): Uint8Array {
    let out = bytes.slice();
    for (const m of mutations) {
      if (m.kind === "set") {
        if (m.at < out.length) out[m.at] = m.value;
      } else if (m.kind === "truncate") {
        out = out.slice(0, Math.min(m.length, out.length));
      } else if (out.length >= 8) {
        new DataView(out.buffer).setBigUint64(0, m.value, true);
      }
    }
    return out;
  }

  test("open + read never fails with anything but SAFETENSORS_INVALID, and never hangs", async () => {
    const p = path.join(dir, "corrupt.safetensors");
    let accepted = 0;
    let refused = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 4 }), async (mutations) => {
        await writeFile(p, apply(valid, mutations));
        let file: SafetensorsFile | undefined;
        try {
          file = await SafetensorsFile.open(p);
        } catch (error) {
          refused++;
          expect(error).toBeInstanceOf(LowrankError);
          expect((error as LowrankError).code).toBe("SAFETENSORS_INVALID");
          expect((error as LowrankError).message.startsWith(`${p}: `)).toBe(true);
          return;
        }
        // A header that validates describes byte ranges inside the file: every read must succeed.
        accepted++;
        try {
          for (const name of file.names()) {
            const t = await file.read(name);
            expect(t.data.byteLength).toBe(file.entry(name).end - file.entry(name).begin);
          }
        } finally {
          await file.close();
        }
      }),
      { numRuns: 300, timeout: 2000 },
    );
    expect(refused).toBeGreaterThan(0);
    expect(accepted).toBeGreaterThan(0);
  });

  test("every truncation of the file is refused", async () => {
    const p = path.join(dir, "truncated.safetensors");
    for (let length = 0; length < valid.length; length++) {
      await writeFile(p, valid.subarray(0, length));
      const e = await openError(p);
      expect(e.code, `length ${length}`).toBe("SAFETENSORS_INVALID");
    }
  });

  test("the uncorrupted sample opens (the property is not vacuous)", async () => {
    const p = await fileWith(valid);
    const { tensors } = await readSafetensors(p);
    expect([...tensors.keys()]).toEqual(["ids", "w", "h", "mask"]);
    expect(new Uint8Array(await readFile(p))).toEqual(valid);
  });
});

/**
 * Records every buffer the reader allocates (it allocates only through Buffer.allocUnsafeSlow) while
 * `fn` runs, so a property can check that no allocation is larger than the file.
 */
async function withAllocations<T>(fn: () => Promise<T>): Promise<{ result: T; sizes: number[] }> {
  const sizes: number[] = [];
  const original = Buffer.allocUnsafeSlow;
  const spy = vi.spyOn(Buffer, "allocUnsafeSlow").mockImplementation((size: number) => {
    sizes.push(size);
    return original.call(Buffer, size);
  });
  try {
    return { result: await fn(), sizes };
  } finally {
    spy.mockRestore();
  }
}

describe("property: hostile headers never allocate more than the file holds", () => {
  const dims = fc.oneof(
    fc.nat(6),
    fc.integer({ min: -5, max: -1 }),
    fc.constantFrom(2 ** 31, 2 ** 32, 2 ** 40, 2 ** 53 - 1, 2 ** 53 + 2, 1e15, 1e300, 0.5, Number.MAX_VALUE),
  );
  const offset = fc.oneof(fc.nat(80), fc.integer({ min: -100, max: -1 }), fc.constantFrom(2 ** 31, 2 ** 32 + 1, 2 ** 53, 1e18, 1.5));
  const tensor = fc.record({
    dtype: fc.constantFrom("F32", "F16", "BF16", "I64", "U8", "BOOL", "F64", "Q4", "f32", ""),
    shape: fc.array(dims, { maxLength: 4 }),
    data_offsets: fc.oneof(fc.tuple(offset, offset), fc.array(offset, { maxLength: 3 })),
  });
  const randomHeader = fc.dictionary(fc.string({ minLength: 1, maxLength: 6 }), tensor, { maxKeys: 5 });
  // A valid layout, then (usually) one of its numbers replaced by a hostile one.
  const validLayout = fc.uniqueArray(
    fc.record({
      name: fc.string({ minLength: 1, maxLength: 4 }),
      dtype: fc.constantFrom("F32", "F16", "U8", "I64"),
      shape: fc.array(fc.nat(3), { maxLength: 3 }),
    }),
    { selector: (t) => t.name, minLength: 1, maxLength: 4 },
  );
  const perturbation = fc.option(fc.record({ index: fc.nat(3), field: fc.constantFrom("dim", "begin", "end"), value: fc.oneof(dims, offset) }), { freq: 3 });
  const SIZE: Record<string, number> = { F32: 4, F16: 2, U8: 1, I64: 8 };
  const nearlyValidHeader = fc.tuple(validLayout, perturbation).map(([layout, change]) => {
    const header: Record<string, { dtype: string; shape: number[]; data_offsets: number[] }> = {};
    let cursor = 0;
    for (const t of layout) {
      const size = t.shape.reduce((a, b) => a * b, 1) * SIZE[t.dtype]!;
      header[t.name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [cursor, cursor + size] };
      cursor += size;
    }
    if (change) {
      const target = header[layout[change.index % layout.length]!.name]!;
      if (change.field === "dim") target.shape[0] = change.value;
      else target.data_offsets[change.field === "begin" ? 0 : 1] = change.value;
    }
    return { header, dataBytes: cursor };
  });
  const headerJson = fc.oneof(
    fc.tuple(randomHeader, fc.nat(96)).map(([header, dataBytes]) => ({ header: header as Record<string, unknown>, dataBytes })),
    nearlyValidHeader,
  );
  const lengthField = fc.oneof(
    fc.constant("exact" as const),
    fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
    fc.integer({ min: -8, max: 8 }).map((d) => ({ delta: d })),
  );

  function build(header: Record<string, unknown>, dataBytes: number, length: bigint | "exact" | { delta: number }): Uint8Array {
    // JSON.stringify writes big numbers in exponent form; also try them written out in full.
    const json = Buffer.from(
      JSON.stringify(header).replace(/(\d)e\+(\d+)/g, (_m, d: string, e: string) => d + "0".repeat(Math.min(Number(e), 400))),
      "utf8",
    );
    const out = new Uint8Array(8 + json.byteLength + dataBytes);
    const n = length === "exact" ? BigInt(json.byteLength) : typeof length === "bigint" ? length : BigInt(Math.max(0, json.byteLength + length.delta));
    new DataView(out.buffer).setBigUint64(0, n, true);
    out.set(json, 8);
    for (let i = 8 + json.byteLength; i < out.length; i++) out[i] = i & 0xff;
    return out;
  }

  test("open + read: only SAFETENSORS_INVALID from open, every read of an opened file succeeds, no allocation beyond the file size", async () => {
    const p = path.join(dir, "forged.safetensors");
    let accepted = 0;
    let refused = 0;
    const before = process.memoryUsage().arrayBuffers;
    await fc.assert(
      fc.asyncProperty(headerJson, lengthField, fc.integer({ min: -2, max: 2 }), async ({ header, dataBytes }, length, extra) => {
        // Usually the data section the header describes, sometimes a few bytes short or long.
        dataBytes = Math.max(0, dataBytes + (length === "exact" ? 0 : extra));
        const bytes = build(header, dataBytes, length);
        await writeFile(p, bytes);
        const { result, sizes } = await withAllocations(async () => {
          let file: SafetensorsFile;
          try {
            file = await SafetensorsFile.open(p);
          } catch (error) {
            return error;
          }
          // A header that validates describes byte ranges inside the file: every read must succeed.
          try {
            for (const name of file.names()) await file.read(name);
          } finally {
            await file.close();
          }
          return undefined;
        });
        for (const size of sizes) expect(size).toBeLessThanOrEqual(bytes.byteLength);
        expect(sizes.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(bytes.byteLength);
        if (result instanceof Error) {
          refused++;
          expect(result).toBeInstanceOf(LowrankError);
          expect((result as LowrankError).code).toBe("SAFETENSORS_INVALID");
          expect(result.message.startsWith(`${p}: `)).toBe(true);
          expect(result.message).not.toMatch(/[\r\n]/);
        } else {
          accepted++;
        }
      }),
      { numRuns: 400 },
    );
    expect(refused).toBeGreaterThan(0);
    expect(accepted).toBeGreaterThan(0);
    // A sanity check on the whole run (400 files of at most a few KB): no forged size was ever allocated.
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(32 * 2 ** 20);
  });

  test("bit flips in a valid file: only SAFETENSORS_INVALID, no allocation beyond the file size", async () => {
    const valid = sampleBytes();
    const p = path.join(dir, "flipped.safetensors");
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.nat(valid.length * 8 - 1), fc.boolean()), { minLength: 1, maxLength: 6 }),
        fc.nat(valid.length),
        async (flips, keep) => {
          const bytes = valid.slice();
          for (const [bit] of flips) bytes[bit >> 3]! ^= 1 << (bit & 7);
          // Half the runs also truncate the file.
          const file = flips[0]![1] ? bytes.subarray(0, keep) : bytes;
          await writeFile(p, file);
          const { result, sizes } = await withAllocations(() => readSafetensors(p).catch((error: unknown) => error));
          for (const size of sizes) expect(size).toBeLessThanOrEqual(file.byteLength);
          if (result instanceof Error) {
            expect(result).toBeInstanceOf(LowrankError);
            expect((result as LowrankError).code).toBe("SAFETENSORS_INVALID");
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  test("the allocation probe sees the reader's allocations (it is not vacuous)", async () => {
    const p = await fileWith(sampleBytes());
    const { sizes } = await withAllocations(() => readSafetensors(p));
    expect(sizes.length).toBeGreaterThanOrEqual(5); // prefix, header, and one buffer per tensor
  });
});
