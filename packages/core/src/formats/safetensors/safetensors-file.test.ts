import { afterAll, beforeAll, describe, expect, test } from "vitest";
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
    ["a byte range that does not match shape × dtype", () => rawFile(`{${t("w", "I64", [2], [0, 8])}}`, 16), /tensor "w" of shape \[2\] and dtype I64 needs 16 bytes but data_offsets span 8/],
    ["an unknown dtype", () => rawFile(`{${t("w", "Q4", [2], [0, 1])}}`, 1), /tensor "w" has unknown dtype "Q4"/],
    ["negative dims", () => rawFile(`{${t("w", "F32", [-2, -2], [0, 16])}}`, 16), /tensor "w" has an invalid shape \[-2,-2\]/],
    ["huge dims", () => rawFile(`{${t("w", "F32", [1e15, 1e15], [0, 16])}}`, 16), /tensor "w" of shape \[1000000000000000, 1000000000000000\] needs more bytes than the file holds/],
    ["non-string metadata", () => rawFile(`{"__metadata__":{"format":"pt","r":8}}`), /`__metadata__\.r` is not a string/],
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
      await expect(file.readFloat32("ids")).rejects.toMatchObject({ code: "SHAPE_MISMATCH", message: `${p}: tensor "ids": dtype I64 is not a floating-point type` });
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
