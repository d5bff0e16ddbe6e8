import { afterAll, beforeAll, beforeEach, describe, expect, test } from "vitest";
import fc from "fast-check";
import { mkdtemp, mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { LowrankError } from "../../errors/lowrank-error.js";
import { captureLowrankRejection } from "../../testing/capture-error.js";
import { requireFixture } from "../../testing/fixtures.js";
import { compareForLayout, DTYPE_BYTES, elementCount, type DType, type Tensor } from "./dtype.js";
import { readSafetensors, SafetensorsFile } from "./safetensors-file.js";
import { planSafetensorsLayout, SafetensorsWriter, serializeSafetensors, writeSafetensors } from "./write-safetensors.js";

let root: string;
let dir: string;
let counter = 0;
beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), "lowrank-st-write-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});
beforeEach(async () => {
  dir = path.join(root, `case-${counter++}`);
  await mkdir(dir);
});

function tensorOf(dtype: DType, shape: number[], seed = 1): Tensor {
  const data = new Uint8Array(elementCount(shape) * DTYPE_BYTES[dtype]);
  for (let i = 0; i < data.length; i++) data[i] = (i * 37 + seed * 11) & 0xff;
  if (dtype === "BOOL") for (let i = 0; i < data.length; i++) data[i]! &= 1;
  return { dtype, shape, data };
}

function headerText(bytes: Uint8Array): string {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return Buffer.from(bytes.subarray(8, 8 + n)).toString("utf8");
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

async function expectRejects(p: Promise<unknown>, code: string, pattern?: RegExp): Promise<LowrankError> {
  const e = await captureLowrankRejection(p);
  expect(e.code).toBe(code);
  if (pattern) expect(e.message).toMatch(pattern);
  return e;
}

describe("planSafetensorsLayout", () => {
  test("writes the exact header: metadata first, dtype rank then name, packed, space-padded", () => {
    const layout = planSafetensorsLayout(
      [
        { name: "b", dtype: "F32", shape: [2] },
        { name: "é", dtype: "U8", shape: [3] },
        { name: "a", dtype: "F32", shape: [1] },
        { name: "z", dtype: "I64", shape: [1] },
      ],
      { format: "pt" },
    );
    const json =
      '{"__metadata__":{"format":"pt"},' +
      '"z":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},' +
      '"a":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},' +
      '"b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]},' +
      '"é":{"dtype":"U8","shape":[3],"data_offsets":[20,23]}}';
    // 249 UTF-8 bytes (é is two) → 7 spaces of padding to 256.
    expect(Buffer.byteLength(json)).toBe(249);
    expect(headerText(layout.headerBytes)).toBe(json + "       ");
    expect(new DataView(layout.headerBytes.buffer).getBigUint64(0, true)).toBe(256n);
    expect(layout.headerBytes.byteLength).toBe(264);
    expect(layout.totalBytes).toBe(264 + 23);
    expect(Object.fromEntries(layout.offsets)).toEqual({
      z: { begin: 0, end: 8 },
      a: { begin: 8, end: 12 },
      b: { begin: 12, end: 20 },
      é: { begin: 20, end: 23 },
    });
  });

  test("without metadata there is no __metadata__ key, and an aligned header gets no padding", () => {
    // {"xxxx":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}} is 56 bytes: already a multiple of 8.
    const layout = planSafetensorsLayout([{ name: "xxxx", dtype: "U8", shape: [0] }]);
    expect(headerText(layout.headerBytes)).toBe('{"xxxx":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}');
    expect(layout.totalBytes).toBe(64);
  });

  test("an empty tensor set is an 8-byte-padded {}", () => {
    const layout = planSafetensorsLayout([]);
    expect(headerText(layout.headerBytes)).toBe("{}      ");
    expect(layout.totalBytes).toBe(16);
  });

  test("duplicate names are refused", () => {
    expect(() =>
      planSafetensorsLayout([
        { name: "w", dtype: "F32", shape: [1] },
        { name: "w", dtype: "F16", shape: [1] },
      ]),
    ).toThrow(expect.objectContaining({ code: "SAFETENSORS_INVALID", message: 'duplicate tensor name "w"' }));
  });

  test("property: the header is a multiple of 8, space-padded, and lists entries in layout order", () => {
    const spec = fc.record({
      name: fc.string({ minLength: 1, maxLength: 12 }).filter((n) => n !== "__metadata__" && n !== "__proto__" && !/^\d+$/.test(n)),
      dtype: fc.constantFrom<DType>("F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL"),
      shape: fc.array(fc.nat(4), { maxLength: 3 }),
    });
    fc.assert(
      fc.property(fc.uniqueArray(spec, { selector: (s) => s.name, maxLength: 8 }), fc.option(fc.dictionary(fc.string(), fc.string())), (specs, metadata) => {
        const layout = planSafetensorsLayout(specs, metadata ?? undefined);
        const n = Number(new DataView(layout.headerBytes.buffer).getBigUint64(0, true));
        expect(n % 8).toBe(0);
        expect(layout.headerBytes.byteLength).toBe(8 + n);
        const text = headerText(layout.headerBytes);
        expect(text.trimEnd().endsWith("}")).toBe(true);
        expect(/^ {0,7}$/.test(text.slice(text.trimEnd().length))).toBe(true);
        const parsed = JSON.parse(text) as Record<string, { data_offsets: [number, number] }>;
        const keys = Object.keys(parsed);
        const expectedOrder = [...specs].sort(compareForLayout).map((s) => s.name);
        expect(keys).toEqual(metadata ? ["__metadata__", ...expectedOrder] : expectedOrder);
        let cursor = 0;
        for (const name of expectedOrder) {
          const s = specs.find((x) => x.name === name)!;
          const size = elementCount(s.shape) * DTYPE_BYTES[s.dtype];
          expect(parsed[name]!.data_offsets).toEqual([cursor, cursor + size]);
          cursor += size;
        }
        expect(layout.totalBytes).toBe(8 + n + cursor);
      }),
      { numRuns: 300 },
    );
  });
});

describe("serializeSafetensors / writeSafetensors round trip", () => {
  const ALL: DType[] = ["F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL", "U64", "U32", "U16"];

  test.each(ALL)("%s tensors round-trip through writeSafetensors and SafetensorsFile", async (dtype) => {
    const tensors = new Map<string, Tensor>([
      ["t.matrix", tensorOf(dtype, [3, 5], 1)],
      ["t.scalar", tensorOf(dtype, [], 2)],
      ["t.empty", tensorOf(dtype, [0, 4], 3)],
    ]);
    const p = path.join(dir, "all.safetensors");
    await writeSafetensors(p, tensors, { dtype });
    const file = await SafetensorsFile.open(p);
    try {
      expect(file.header.metadata).toEqual({ dtype });
      expect(file.names()).toEqual(["t.empty", "t.matrix", "t.scalar"]); // data order: by name within a dtype
      for (const [name, t] of tensors) {
        const back = await file.read(name);
        expect(back.dtype).toBe(dtype);
        expect(back.shape).toEqual(t.shape);
        expect(sameBytes(back.data, t.data)).toBe(true);
      }
    } finally {
      await file.close();
    }
    expect(sameBytes(new Uint8Array(await readFile(p)), serializeSafetensors(tensors, { dtype }))).toBe(true);
  });

  test("a mixed set lays tensors out by dtype rank then name, metadata first", async () => {
    const tensors = new Map<string, Tensor>(ALL.map((d, i) => [`n${String(ALL.length - i).padStart(2, "0")}`, tensorOf(d, [2], i)]));
    tensors.set("a_f32", tensorOf("F32", [1]));
    const bytes = serializeSafetensors(tensors, { format: "pt" });
    const keys = Object.keys(JSON.parse(headerText(bytes)));
    const dtypeOf = (k: string) => tensors.get(k)!.dtype;
    expect(keys[0]).toBe("__metadata__");
    expect(keys.slice(1).map((k) => `${dtypeOf(k)}:${k}`)).toEqual([
      "U64:n03",
      "I64:n09",
      "F64:n13",
      "F32:a_f32",
      "F32:n12",
      "U32:n02",
      "I32:n08",
      "BF16:n10",
      "F16:n11",
      "U16:n01",
      "I16:n07",
      "I8:n06",
      "U8:n05",
      "BOOL:n04",
    ]);
    const p = path.join(dir, "mixed.safetensors");
    await writeFile(p, bytes);
    const { tensors: back, metadata } = await readSafetensors(p);
    expect(metadata).toEqual({ format: "pt" });
    for (const [name, t] of tensors) expect(sameBytes(back.get(name)!.data, t.data), name).toBe(true);
  });

  test("a tensor whose data length does not match its shape is refused", () => {
    const bad = new Map<string, Tensor>([["w", { dtype: "F32", shape: [2, 2], data: new Uint8Array(12) }]]);
    expect(() => serializeSafetensors(bad)).toThrow(
      expect.objectContaining({
        code: "SHAPE_MISMATCH",
        message: 'tensor "w" has 12 bytes, expected 16 for F32[2, 2]',
      }),
    );
  });

  test("writeSafetensors with a bad tensor leaves the folder empty", async () => {
    const bad = new Map<string, Tensor>([
      ["ok", tensorOf("F32", [2])],
      ["w", { dtype: "F16", shape: [3], data: new Uint8Array(4) }],
    ]);
    await expectRejects(writeSafetensors(path.join(dir, "bad.safetensors"), bad), "SHAPE_MISMATCH", /tensor "w" has 4 bytes, expected 6/);
    expect(await readdir(dir)).toEqual([]);
  });

  test("property: random tensor sets round-trip", async () => {
    const dtypes = fc.constantFrom<DType>("F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL");
    const entry = fc
      // Zero dims only in front: see the report about [n, 0] shapes in parse-header.
      .tuple(
        dtypes,
        fc.oneof(
          fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 3 }),
          fc.array(fc.nat(3), { maxLength: 2 }).map((s) => [0, ...s]),
        ),
      )
      .chain(([dtype, shape]) =>
        fc
          .uint8Array({ minLength: elementCount(shape) * DTYPE_BYTES[dtype], maxLength: elementCount(shape) * DTYPE_BYTES[dtype] })
          .map((data): Tensor => ({ dtype, shape, data })),
      );
    const name = fc.string({ minLength: 1, maxLength: 10 }).filter((n) => n !== "__metadata__" && n !== "__proto__");
    const sets = fc.uniqueArray(fc.tuple(name, entry), { selector: ([n]) => n, maxLength: 6 });
    const p = path.join(dir, "prop.safetensors");
    await fc.assert(
      fc.asyncProperty(sets, fc.option(fc.dictionary(fc.string(), fc.string(), { maxKeys: 3 })), async (list, metadata) => {
        const tensors = new Map(list);
        await writeSafetensors(p, tensors, metadata ?? undefined);
        const { tensors: back, metadata: backMeta } = await readSafetensors(p);
        expect(backMeta).toEqual(metadata ?? undefined);
        expect(new Set(back.keys())).toEqual(new Set(tensors.keys()));
        for (const [n, t] of tensors) {
          const b = back.get(n)!;
          expect(b.dtype).toBe(t.dtype);
          expect(b.shape).toEqual(t.shape);
          expect(sameBytes(b.data, t.data)).toBe(true);
        }
        expect(sameBytes(new Uint8Array(await readFile(p)), serializeSafetensors(tensors, metadata ?? undefined))).toBe(true);
      }),
      { numRuns: 100 },
    );
  });
});

describe("byte-identical rewrite of PyTorch-written fixtures", () => {
  test.each([
    ["gpt2-tiny-lora", "adapter_model.safetensors"],
    ["cases", "gpt2-tiny-lora.safetensors"],
  ])("%s/%s", async (...parts) => {
    const p = requireFixture(...parts);
    const original = new Uint8Array(await readFile(p));
    const { tensors, metadata } = await readSafetensors(p);
    expect(metadata).toEqual({ format: "pt" });
    const dtypes = new Set([...tensors.values()].map((t) => t.dtype));
    if (parts[0] === "cases") expect(dtypes).toEqual(new Set(["I64", "F32"]));
    // Reverse the insertion order so the writer has to sort.
    const shuffled = new Map([...tensors].reverse());
    const rewritten = serializeSafetensors(shuffled, metadata);
    expect(rewritten.byteLength).toBe(original.byteLength);
    expect(headerText(rewritten)).toBe(headerText(original));
    expect(sameBytes(rewritten, original)).toBe(true);

    const out = path.join(dir, "rewrite.safetensors");
    await writeSafetensors(out, shuffled, metadata);
    expect(sameBytes(new Uint8Array(await readFile(out)), original)).toBe(true);
  });
});

describe("SafetensorsWriter", () => {
  const specs = [
    { name: "ids", dtype: "I64" as DType, shape: [2] },
    { name: "a", dtype: "F32" as DType, shape: [2, 2] },
    { name: "b", dtype: "F16" as DType, shape: [3] },
  ];
  const data = new Map(specs.map((s, i) => [s.name, tensorOf(s.dtype, s.shape, i + 1)]));

  test("tensors written out of order produce the serializer's bytes", async () => {
    const target = path.join(dir, "out.safetensors");
    const writer = await SafetensorsWriter.create(target, specs, { format: "pt" });
    for (const name of ["b", "ids", "a"]) await writer.write(name, data.get(name)!.data);
    await writer.commit();
    expect(await readdir(dir)).toEqual(["out.safetensors"]);
    expect(sameBytes(new Uint8Array(await readFile(target)), serializeSafetensors(data, { format: "pt" }))).toBe(true);
  });

  test("commit with a missing tensor throws, leaving no target and no temp file", async () => {
    const target = path.join(dir, "out.safetensors");
    const writer = await SafetensorsWriter.create(target, specs);
    await writer.write("a", data.get("a")!.data);
    expect((await readdir(dir)).length).toBe(1); // the temporary file
    const e = await expectRejects(writer.commit(), "SAFETENSORS_INVALID");
    expect(e.message).toBe(`${target}: tensors never written: ids, b`);
    expect(await readdir(dir)).toEqual([]);
  });

  test("a failed commit leaves an existing target untouched", async () => {
    const target = path.join(dir, "out.safetensors");
    await writeFile(target, "previous");
    const writer = await SafetensorsWriter.create(target, specs);
    await expectRejects(writer.commit(), "SAFETENSORS_INVALID", /tensors never written: ids, a, b$/);
    expect(await readdir(dir)).toEqual(["out.safetensors"]);
    expect(await readFile(target, "utf8")).toBe("previous");
  });

  test("abort leaves nothing", async () => {
    const writer = await SafetensorsWriter.create(path.join(dir, "out.safetensors"), specs);
    for (const [name, t] of data) await writer.write(name, t.data);
    await writer.abort();
    expect(await readdir(dir)).toEqual([]);
  });

  test("an undeclared tensor or wrong byte count is refused", async () => {
    const target = path.join(dir, "out.safetensors");
    const writer = await SafetensorsWriter.create(target, specs);
    try {
      await expectRejects(writer.write("c", new Uint8Array(4)), "SAFETENSORS_INVALID", /tensor "c" was not declared$/);
      const e = await expectRejects(writer.write("a", new Uint8Array(15)), "SHAPE_MISMATCH");
      expect(e.message).toBe(`${target}: tensor "a" has 15 bytes, expected 16 for F32[2, 2]`);
    } finally {
      await writer.abort();
    }
    expect(await readdir(dir)).toEqual([]);
  });

  test("rewriting a tensor overwrites its bytes in place", async () => {
    const target = path.join(dir, "out.safetensors");
    const writer = await SafetensorsWriter.create(target, specs);
    await writer.write("a", new Uint8Array(16).fill(7));
    for (const [name, t] of data) await writer.write(name, t.data);
    await writer.commit();
    expect(sameBytes(new Uint8Array(await readFile(target)), serializeSafetensors(data))).toBe(true);
  });
});

describe("streaming a tensor through a small buffer", () => {
  test("readChunks + writeChunks copy a file byte for byte; read(name, into) reuses the buffer", async () => {
    const tensors = new Map<string, Tensor>([
      ["big", tensorOf("F32", [1000, 3])],
      ["small", tensorOf("BF16", [7], 2)],
      ["empty", tensorOf("F32", [0, 4])],
    ]);
    const source = path.join(dir, "a.safetensors");
    await writeSafetensors(source, tensors, { format: "pt" });
    const file = await SafetensorsFile.open(source);
    try {
      const entries = file.header.entries.map((e) => ({ name: e.name, dtype: e.dtype, shape: e.shape }));
      const writer = await SafetensorsWriter.create(path.join(dir, "b.safetensors"), entries, { format: "pt" });
      const buffer = new Uint8Array(1000); // smaller than "big" (12,000 bytes) and not a divisor of it
      for (const e of entries) await writer.writeChunks(e.name, file.readChunks(e.name, buffer));
      await writer.commit();
      expect(sameBytes(await readFile(source), await readFile(path.join(dir, "b.safetensors")))).toBe(true);

      const into = new Uint8Array(20_000);
      const read = await file.read("big", into);
      expect(read.data.buffer).toBe(into.buffer);
      expect(read.data.byteLength).toBe(12_000);
      expect(sameBytes(read.data, tensors.get("big")!.data)).toBe(true);
      const tooSmall = new Uint8Array(10);
      expect((await file.read("big", tooSmall)).data.buffer).not.toBe(tooSmall.buffer);
    } finally {
      await file.close();
    }
  });

  test("writeChunks refuses pieces that do not add up to the tensor's size", async () => {
    const writer = await SafetensorsWriter.create(path.join(dir, "c.safetensors"), [{ name: "w", dtype: "F32", shape: [4] }]);
    async function* pieces(sizes: number[]) {
      for (const n of sizes) yield new Uint8Array(n);
    }
    const short = await captureLowrankRejection(writer.writeChunks("w", pieces([8, 4])));
    expect(short.code).toBe("SHAPE_MISMATCH");
    expect(short.message).toMatch(/c\.safetensors: tensor "w" got 12 bytes, expected 16/);
    expect((await captureLowrankRejection(writer.writeChunks("w", pieces([8, 16])))).message).toMatch(/tensor "w" got more than the 16 bytes it holds/);
    expect((await captureLowrankRejection(writer.writeChunks("nope", pieces([4])))).code).toBe("SAFETENSORS_INVALID");
    await writer.abort();
    expect(await readdir(dir)).toEqual([]);
  });
});
