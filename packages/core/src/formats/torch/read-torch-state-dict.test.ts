import { afterAll, describe, it, expect } from "vitest";
import { readFileSync } from "node:fs";
import { existsSync, mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { deflateRawSync } from "node:zlib";
import type { LowrankError } from "../../errors/lowrank-error.js";
import { captureLowrankError, captureLowrankRejection } from "../../testing/capture-error.js";
import { requireFixture } from "../../testing/fixtures.js";
import { parseTorchStateDict, readTorchStateDict, type TorchTensor } from "./read-torch-state-dict.js";
import { openZipArchive } from "./zip-reader.js";

// ---------- fixtures ----------

/** Reads a fixture; a missing fixture fails the test (never skips). */
function fixture(relative: string): Uint8Array {
  return new Uint8Array(readFileSync(requireFixture(relative))); // a copy at byteOffset 0
}

interface ManifestTensorRecord {
  key: string;
  persistent_id: [string, string, string, string, number];
  storage_offset: number;
  size: number[];
  stride: number[];
}
interface TorchSaveFormat {
  archive_prefix: string;
  members_in_file_order: { name: string; bytes: number; data_offset: number }[];
  pickle: { tensor_records: ManifestTensorRecord[] };
}
interface ManifestFixture {
  torch_save_format: TorchSaveFormat;
  adapter_keys_in_pickle_order?: Record<string, [string, number[]]>;
  lora_keys_in_pickle_order?: Record<string, [string, number[]]>;
}

function manifestFixture(name: "gpt2_bin" | "loralib_gpt2"): ManifestFixture {
  const manifest = JSON.parse(new TextDecoder().decode(fixture("manifest.json"))) as { fixtures: Record<string, ManifestFixture> };
  const entry = manifest.fixtures[name];
  expect(entry, `manifest has no fixtures.${name}`).toBeDefined();
  return entry!;
}

/** Minimal safetensors reader: u64 header length, JSON header, data. */
function readSafetensors(bytes: Uint8Array): Map<string, { dtype: string; shape: number[]; data: Uint8Array }> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength))) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  const dataStart = 8 + headerLength;
  const out = new Map<string, { dtype: string; shape: number[]; data: Uint8Array }>();
  for (const [name, info] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const [begin, end] = info.data_offsets;
    out.set(name, { dtype: info.dtype, shape: info.shape, data: bytes.subarray(dataStart + begin, dataStart + end) });
  }
  return out;
}

function floats(tensor: TorchTensor | undefined): number[] {
  expect(tensor).toBeDefined();
  const data = (tensor as TorchTensor).data;
  return Array.from(new Float32Array(data.buffer, data.byteOffset, data.byteLength / 4));
}

// ---------- test-side pickle and zip writers ----------

const utf8 = new TextEncoder();

class PickleBuilder {
  private readonly out: number[] = [];
  raw(...bytes: number[]): this {
    this.out.push(...bytes);
    return this;
  }
  u32(n: number): this {
    return this.raw(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff);
  }
  proto(v = 2): this {
    return this.raw(0x80, v);
  }
  str(s: string): this {
    const b = utf8.encode(s);
    this.raw(0x58).u32(b.length);
    this.out.push(...b);
    return this;
  }
  global(module: string, name: string): this {
    this.raw(0x63);
    this.out.push(...utf8.encode(`${module}\n${name}\n`));
    return this;
  }
  int(n: number): this {
    if (n < 256) return this.raw(0x4b, n);
    if (n < 65536) return this.raw(0x4d, n & 0xff, n >>> 8);
    return this.raw(0x4a).u32(n);
  }
  longPut(i: number): this {
    return this.raw(0x72).u32(i);
  }
  longGet(i: number): this {
    return this.raw(0x6a).u32(i);
  }
  mark(): this {
    return this.raw(0x28);
  }
  tuple(): this {
    return this.raw(0x74);
  }
  reduce(): this {
    return this.raw(0x52);
  }
  bool(b: boolean): this {
    return this.raw(b ? 0x88 : 0x89);
  }
  emptyDict(): this {
    return this.raw(0x7d);
  }
  emptyTuple(): this {
    return this.raw(0x29);
  }
  setitem(): this {
    return this.raw(0x73);
  }
  setitems(): this {
    return this.raw(0x75);
  }
  stop(): this {
    return this.raw(0x2e);
  }
  ints(xs: number[]): this {
    if (xs.length === 0) return this.emptyTuple();
    if (xs.length > 3) {
      this.mark();
      xs.forEach((x) => this.int(x));
      return this.tuple();
    }
    xs.forEach((x) => this.int(x));
    return this.raw([0x85, 0x86, 0x87][xs.length - 1]!);
  }
  storage(cls: string, key: string, numel: number): this {
    return this.mark().str("storage").global("torch", cls).str(key).str("cpu").int(numel).tuple().raw(0x51);
  }
  /** _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, OrderedDict()) with the storage written by `storage`. */
  tensor(storage: (p: this) => void, offset: number, size: number[], stride: number[], requiresGrad = false): this {
    this.global("torch._utils", "_rebuild_tensor_v2").mark();
    storage(this);
    this.int(offset).ints(size).ints(stride).bool(requiresGrad);
    return this.global("collections", "OrderedDict").emptyTuple().reduce().tuple().reduce();
  }
  bytes(): Uint8Array {
    return Uint8Array.from(this.out);
  }
}

interface ZipInput {
  name: string;
  data: Uint8Array;
  method?: 0 | 8 | 12;
}
interface ZipOptions {
  zip64?: boolean;
  zip64Extra?: boolean;
}

/** Writes a zip like torch.save does: flags 0x0808, data descriptors, 64-byte aligned data via "FB" padding. */
function makeZip(members: ZipInput[], options: ZipOptions = {}): Uint8Array {
  const chunks: Buffer[] = [];
  let offset = 0;
  const push = (b: Buffer): void => {
    chunks.push(b);
    offset += b.length;
  };
  const central: Buffer[] = [];
  for (const member of members) {
    const method = member.method ?? 0;
    const stored = method === 8 ? deflateRawSync(member.data) : Buffer.from(member.data);
    const name = Buffer.from(member.name, "utf8");
    const headerOffset = offset;
    const pad = (64 - ((offset + 30 + name.length + 4) % 64)) % 64;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0x0808, 6);
    local.writeUInt16LE(method, 8);
    local.writeUInt16LE(0x21, 12);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(4 + pad, 28);
    const extra = Buffer.alloc(4 + pad, 0x5a);
    extra.write("FB", 0, "latin1");
    extra.writeUInt16LE(pad, 2);
    push(Buffer.concat([local, name, extra, stored]));
    const descriptor = Buffer.alloc(16);
    descriptor.writeUInt32LE(0x08074b50, 0);
    descriptor.writeUInt32LE(stored.length, 8);
    descriptor.writeUInt32LE(member.data.length, 12);
    push(descriptor);
    const entry = Buffer.alloc(46);
    const big = options.zip64Extra === true;
    entry.writeUInt32LE(0x02014b50, 0);
    entry.writeUInt16LE(0x031e, 4);
    entry.writeUInt16LE(45, 6);
    entry.writeUInt16LE(0x0808, 8);
    entry.writeUInt16LE(method, 10);
    entry.writeUInt16LE(0x21, 14);
    entry.writeUInt32LE(big ? 0xffffffff : stored.length, 20);
    entry.writeUInt32LE(big ? 0xffffffff : member.data.length, 24);
    entry.writeUInt16LE(name.length, 28);
    entry.writeUInt16LE(big ? 28 : 0, 30);
    entry.writeUInt32LE(big ? 0xffffffff : headerOffset, 42);
    const zip64 = Buffer.alloc(big ? 28 : 0);
    if (big) {
      zip64.writeUInt16LE(1, 0);
      zip64.writeUInt16LE(24, 2);
      zip64.writeBigUInt64LE(BigInt(member.data.length), 4);
      zip64.writeBigUInt64LE(BigInt(stored.length), 12);
      zip64.writeBigUInt64LE(BigInt(headerOffset), 20);
    }
    central.push(Buffer.concat([entry, name, zip64]));
  }
  const cdOffset = offset;
  const cd = Buffer.concat(central);
  push(cd);
  const n = members.length;
  if (options.zip64 === true) {
    const record = Buffer.alloc(56);
    record.writeUInt32LE(0x06064b50, 0);
    record.writeBigUInt64LE(44n, 4);
    record.writeUInt16LE(0x031e, 12);
    record.writeUInt16LE(45, 14);
    record.writeBigUInt64LE(BigInt(n), 24);
    record.writeBigUInt64LE(BigInt(n), 32);
    record.writeBigUInt64LE(BigInt(cd.length), 40);
    record.writeBigUInt64LE(BigInt(cdOffset), 48);
    const locator = Buffer.alloc(20);
    locator.writeUInt32LE(0x07064b50, 0);
    locator.writeBigUInt64LE(BigInt(offset), 8);
    locator.writeUInt32LE(1, 16);
    push(Buffer.concat([record, locator]));
  }
  const eocd = Buffer.alloc(22);
  const z = options.zip64 === true;
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(z ? 0xffff : n, 8);
  eocd.writeUInt16LE(z ? 0xffff : n, 10);
  eocd.writeUInt32LE(z ? 0xffffffff : cd.length, 12);
  eocd.writeUInt32LE(z ? 0xffffffff : cdOffset, 16);
  push(eocd);
  return new Uint8Array(Buffer.concat(chunks));
}

function float32Bytes(values: number[]): Uint8Array {
  return new Uint8Array(Float32Array.from(values).buffer);
}

/** A torch.save-like zip: archive/data.pkl, archive/data/<key>..., archive/version. */
function torchZip(pickle: Uint8Array, storages: Record<string, Uint8Array>, options: ZipOptions & { method?: 0 | 8 | 12 } = {}): Uint8Array {
  const members: ZipInput[] = [{ name: "archive/data.pkl", data: pickle, method: options.method }];
  for (const [key, data] of Object.entries(storages)) members.push({ name: `archive/data/${key}`, data, method: options.method });
  members.push({ name: "archive/version", data: utf8.encode("3\n") });
  return makeZip(members, options);
}

function expectPickleError(run: () => unknown, pattern: RegExp, label = "test.pt"): LowrankError {
  const error = captureLowrankError(run);
  expect(error.code).toBe("PICKLE_INVALID");
  expect(error.message.startsWith(`${label}: `)).toBe(true);
  expect(error.message).not.toMatch(/[\n\r]/);
  expect(error.message).toMatch(pattern);
  return error;
}

/** A one-tensor state dict {"w": float32[n]} whose storage key is "0". */
function simplePickle(numel: number, size: number[], stride: number[], offset = 0): Uint8Array {
  return new PickleBuilder()
    .proto()
    .emptyDict()
    .mark()
    .str("w")
    .tensor((p) => p.storage("FloatStorage", "0", numel), offset, size, stride)
    .setitems()
    .stop()
    .bytes();
}

// ---------- tests ----------

describe("readTorchStateDict on the fixtures", () => {
  it("reads gpt2-tiny-lora-bin/adapter_model.bin bit-identically to the safetensors adapter, in pickle order", () => {
    const tensors = parseTorchStateDict(fixture("gpt2-tiny-lora-bin/adapter_model.bin"), "adapter_model.bin");
    const reference = readSafetensors(fixture("gpt2-tiny-lora/adapter_model.safetensors"));
    const expected = manifestFixture("gpt2_bin").adapter_keys_in_pickle_order ?? {};
    expect(tensors.size).toBe(12);
    expect([...tensors.keys()]).toEqual(Object.keys(expected));
    expect(new Set(tensors.keys())).toEqual(new Set(reference.keys()));
    for (const [name, tensor] of tensors) {
      const ref = reference.get(name);
      expect(tensor.name).toBe(name);
      expect(tensor.dtype).toBe("F32");
      expect(ref?.dtype).toBe("F32");
      expect(tensor.shape).toEqual(ref?.shape);
      expect(tensor.shape).toEqual(expected[name]![1]);
      expect(Buffer.from(tensor.data).equals(Buffer.from(ref?.data ?? []))).toBe(true);
    }
  });

  it("reads loralib-gpt2/lora_state_dict.pt from disk with the manifest's keys, shapes and tensor records", async () => {
    const file = requireFixture("loralib-gpt2/lora_state_dict.pt");
    const tensors = await readTorchStateDict(file);
    const info = manifestFixture("loralib_gpt2");
    const expected = info.lora_keys_in_pickle_order ?? {};
    expect([...tensors.keys()]).toEqual([
      "transformer.h.0.attn.c_attn.lora_A",
      "transformer.h.0.attn.c_attn.lora_B",
      "transformer.h.1.attn.c_attn.lora_A",
      "transformer.h.1.attn.c_attn.lora_B",
    ]);
    expect([...tensors.keys()]).toEqual(Object.keys(expected));
    expect(tensors.get("transformer.h.0.attn.c_attn.lora_A")?.shape).toEqual([12, 64]);
    expect(tensors.get("transformer.h.1.attn.c_attn.lora_B")?.shape).toEqual([192, 4]);
    const archive = openZipArchive(fixture("loralib-gpt2/lora_state_dict.pt"), "lora_state_dict.pt");
    for (const record of info.torch_save_format.pickle.tensor_records) {
      const tensor = tensors.get(record.key);
      expect(tensor?.shape).toEqual(record.size);
      expect(tensor?.data.length).toBe(record.size.reduce((a, b) => a * b, 1) * 4);
      const member = archive.read(`${info.torch_save_format.archive_prefix}/data/${record.persistent_id[2]}`);
      expect(Buffer.from(tensor?.data ?? []).equals(Buffer.from(member.subarray(record.storage_offset * 4)))).toBe(true);
      expect(floats(tensor).every(Number.isFinite)).toBe(true);
    }
  });

  it("locates every zip member where the manifest says (central directory + local header)", () => {
    for (const [name, file] of [
      ["gpt2_bin", "gpt2-tiny-lora-bin/adapter_model.bin"],
      ["loralib_gpt2", "loralib-gpt2/lora_state_dict.pt"],
    ] as const) {
      const archive = openZipArchive(fixture(file), file);
      const members = manifestFixture(name).torch_save_format.members_in_file_order;
      expect(archive.names()).toEqual(members.map((m) => m.name));
      for (const member of members) {
        const data = archive.read(member.name);
        expect(data.length).toBe(member.bytes);
        expect(data.byteOffset).toBe(member.data_offset);
      }
    }
  });
});

describe("parseTorchStateDict on handmade archives", () => {
  const storage0 = float32Bytes([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  const shared = (p: PickleBuilder): void => {
    p.longGet(100);
  };

  /** OrderedDict top level, shared storage, views, TUPLE1/TUPLE3, LONG_BINPUT/GET, BININT, NEWTRUE, BUILD. */
  function richPickle(): Uint8Array {
    const p = new PickleBuilder()
      .proto()
      .global("collections", "OrderedDict")
      .emptyTuple()
      .reduce()
      .longPut(1)
      .str("a")
      .tensor((q) => q.storage("FloatStorage", "0", 12).longPut(100), 0, [3, 4], [4, 1])
      .setitem()
      .mark()
      .str("a_t")
      .tensor(shared, 0, [4, 3], [1, 4])
      .str("b")
      .tensor(shared, 2, [5], [2])
      .str("c")
      .tensor(shared, 0, [1, 2, 3], [12, 1, 2])
      .str("meta")
      .int(7)
      .str("big")
      .tensor((q) => q.storage("ByteStorage", "1", 70000), 0, [70000], [1], true)
      .str("p")
      .global("torch._utils", "_rebuild_parameter")
      .mark()
      .tensor(shared, 6, [6], [1])
      .bool(true)
      .global("collections", "OrderedDict")
      .emptyTuple()
      .reduce()
      .tuple()
      .reduce()
      .setitems();
    // BUILD with a {"_metadata": OrderedDict({"": {"version": 1}})} state, as state_dict() pickles it
    p.emptyDict()
      .str("_metadata")
      .global("collections", "OrderedDict")
      .emptyTuple()
      .reduce()
      .str("")
      .emptyDict()
      .str("version")
      .int(1)
      .setitem()
      .setitem()
      .setitem()
      .raw(0x62);
    return p.stop().bytes();
  }

  function bigStorage(): Uint8Array {
    return Uint8Array.from({ length: 70000 }, (_, i) => i % 251);
  }

  function checkRich(tensors: Map<string, TorchTensor>): void {
    expect([...tensors.keys()]).toEqual(["a", "a_t", "b", "c", "big", "p"]);
    expect(floats(tensors.get("a"))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    expect(tensors.get("a_t")?.shape).toEqual([4, 3]);
    expect(floats(tensors.get("a_t"))).toEqual([0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]);
    expect(floats(tensors.get("b"))).toEqual([2, 4, 6, 8, 10]);
    expect(tensors.get("c")?.shape).toEqual([1, 2, 3]);
    expect(floats(tensors.get("c"))).toEqual([0, 2, 4, 1, 3, 5]);
    expect(floats(tensors.get("p"))).toEqual([6, 7, 8, 9, 10, 11]);
    const big = tensors.get("big");
    expect(big?.dtype).toBe("U8");
    expect(big?.shape).toEqual([70000]);
    expect(Buffer.from(big?.data ?? []).equals(Buffer.from(bigStorage()))).toBe(true);
  }

  it("honours shared storages, offsets and non-contiguous strides", () => {
    checkRich(parseTorchStateDict(torchZip(richPickle(), { "0": storage0, "1": bigStorage() }), "rich.pt"));
  });

  it("reads zip64 end records, zip64 extra fields and deflated members", () => {
    const bytes = torchZip(richPickle(), { "0": storage0, "1": bigStorage() }, { zip64: true, zip64Extra: true, method: 8 });
    checkRich(parseTorchStateDict(bytes, "rich64.pt"));
  });

  it("unwraps a lone dict under model_state_dict and keeps other tensors out", () => {
    const pickle = new PickleBuilder()
      .proto()
      .emptyDict()
      .mark()
      .str("epoch")
      .int(3)
      .str("model_state_dict")
      .emptyDict()
      .mark()
      .str("x")
      .tensor((p) => p.storage("FloatStorage", "0", 12), 4, [2, 2], [2, 1])
      .setitems()
      .setitems()
      .stop()
      .bytes();
    const tensors = parseTorchStateDict(torchZip(pickle, { "0": storage0 }), "wrapped.pt");
    expect([...tensors.keys()]).toEqual(["x"]);
    expect(floats(tensors.get("x"))).toEqual([4, 5, 6, 7]);
  });

  it("rejects GLOBAL os.system + REDUCE before anything is called", () => {
    const pickle = new PickleBuilder().proto().global("os", "system").str("touch /tmp/pwned").raw(0x85).reduce().stop().bytes();
    const error = expectPickleError(
      () => parseTorchStateDict(torchZip(pickle, {}), "test.pt"),
      /0x63 'GLOBAL' at byte 2 refers to os\.system, which is not allowed/,
    );
    expect(error.usage).toBe(true);
  });

  it("rejects builtins.eval via STACK_GLOBAL and REDUCE on a storage class", () => {
    const viaStack = new PickleBuilder()
      .proto(4)
      .raw(0x8c, 8)
      .raw(...utf8.encode("builtins"))
      .raw(0x8c, 4)
      .raw(...utf8.encode("eval"))
      .raw(0x93)
      .stop()
      .bytes();
    expectPickleError(() => parseTorchStateDict(torchZip(viaStack, {}), "test.pt"), /'STACK_GLOBAL' .*builtins\.eval, which is not allowed/);
    const callStorage = new PickleBuilder().proto().global("torch", "FloatStorage").emptyTuple().reduce().stop().bytes();
    expectPickleError(() => parseTorchStateDict(torchZip(callStorage, {}), "test.pt"), /'REDUCE' .*cannot call torch\.FloatStorage/);
  });

  it("rejects non-zip input, bare pickles and truncated archives", () => {
    expectPickleError(() => parseTorchStateDict(utf8.encode("hello, not a zip at all ".repeat(4)), "test.pt"), /not a zip archive/);
    expectPickleError(() => parseTorchStateDict(simplePickle(12, [12], [1]), "test.pt"), /pre-1\.6 torch\.save format/);
    expectPickleError(() => parseTorchStateDict(new Uint8Array(0), "test.pt"), /not a zip archive/);
    const full = fixture("loralib-gpt2/lora_state_dict.pt");
    for (const cut of [full.length - 1, full.length - 30, Math.floor(full.length / 2), 100]) {
      expectPickleError(() => parseTorchStateDict(full.subarray(0, cut), "test.pt"), /zip|truncated/);
    }
    const good = torchZip(simplePickle(12, [12], [1]), { "0": storage0 });
    const cd = openZipArchive(good, "x").members.get("archive/data/0");
    const chopped = good.slice();
    chopped.fill(0, cd?.localHeaderOffset ?? 0, (cd?.localHeaderOffset ?? 0) + 4); // damaged local header
    expectPickleError(() => parseTorchStateDict(chopped, "test.pt"), /no local header/);
  });

  it("rejects a forged numel or size beyond the storage, without allocating it", () => {
    const zip = (pickle: Uint8Array): Uint8Array => torchZip(pickle, { "0": storage0 });
    expectPickleError(() => parseTorchStateDict(zip(simplePickle(2_000_000_000, [12], [1])), "test.pt"), /2000000000 F32 elements .* holds only 48 bytes/);
    expectPickleError(() => parseTorchStateDict(zip(simplePickle(12, [13], [1])), "test.pt"), /addresses element 12 .* holds only 12 elements/);
    expectPickleError(() => parseTorchStateDict(zip(simplePickle(12, [4, 4], [1, 4])), "test.pt"), /addresses element 15/);
    expectPickleError(() => parseTorchStateDict(zip(simplePickle(12, [12], [1], 1)), "test.pt"), /addresses element 12/);
    expectPickleError(() => parseTorchStateDict(zip(simplePickle(12, [65536, 65536, 65536], [0, 0, 0])), "test.pt"), /forged size/);
  });

  it("rejects unknown and unsupported opcodes, underflow, memo misses and missing STOP", () => {
    const run = (body: number[]): void => {
      parseTorchStateDict(torchZip(Uint8Array.from([0x80, 2, ...body]), {}), "test.pt");
    };
    expectPickleError(() => run([0xff]), /opcode 0xff \(not a pickle opcode\) at byte 2 is not supported/);
    expectPickleError(() => run([0x69]), /opcode 0x69 'INST' at byte 2 is not supported/);
    expectPickleError(() => run([0x86, 0x2e]), /'TUPLE2' .*stack underflow/);
    expectPickleError(() => run([0x28, 0x86, 0x2e]), /'TUPLE2' .*stack underflow/);
    expectPickleError(() => run([0x74]), /'TUPLE' .*needs a MARK/);
    expectPickleError(() => run([0x68, 5]), /'BINGET' .*memo entry 5, which was never stored/);
    expectPickleError(() => run([0x7d]), /without a STOP opcode/);
    expectPickleError(() => run([0x58, 0xff, 0xff, 0xff, 0x7f]), /'BINUNICODE' .*data\.pkl ends/);
    expectPickleError(() => run([0x4e, 0x2e]), /top-level pickle object is a None/);
  });

  it("enforces nesting limits", () => {
    const marks = new Array<number>(300).fill(0x28);
    expectPickleError(() => parseTorchStateDict(torchZip(Uint8Array.from([0x80, 2, ...marks]), {}), "test.pt"), /nests MARKs deeper/);
    const tuples = [0x4e, ...new Array<number>(100).fill(0x85), 0x2e];
    expectPickleError(() => parseTorchStateDict(torchZip(Uint8Array.from([0x80, 2, ...tuples]), {}), "test.pt"), /nests containers deeper/);
  });

  it("rejects missing data.pkl, missing storage members and unsupported compression", () => {
    const noPickle = makeZip([{ name: "archive/version", data: utf8.encode("3\n") }]);
    expectPickleError(() => parseTorchStateDict(noPickle, "test.pt"), /no data\.pkl member/);
    const noStorage = torchZip(simplePickle(12, [12], [1]), {});
    expectPickleError(() => parseTorchStateDict(noStorage, "test.pt"), /tensor "w" uses storage "0", but zip member "archive\/data\/0" is missing/);
    const bzip = torchZip(simplePickle(12, [12], [1]), { "0": storage0 }, { method: 12 });
    expectPickleError(() => parseTorchStateDict(bzip, "test.pt"), /compression method 12, which is not supported/);
  });

  it("reports unreadable paths as IO_ERROR", async () => {
    await expect(readTorchStateDict(path.join(tmpdir(), "no-such-dir-lowrank", "x.bin"))).rejects.toMatchObject({ code: "IO_ERROR" });
    const dir = mkdtempSync(path.join(tmpdir(), "lowrank-torch-"));
    try {
      const file = path.join(dir, "model.pt");
      writeFileSync(file, torchZip(simplePickle(12, [3, 4], [4, 1]), { "0": storage0 }));
      expect(floats((await readTorchStateDict(file)).get("w"))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// ---------- hostile pickles: refused, never executed ----------

/**
 * Pickles with opcodes or globals outside the safe subset. The first five and the INST one run code
 * when Python's pickle.loads (so torch.load without weights_only) reads them: each creates `marker`
 * (checked by hand with CPython 3.11). lowrank must refuse all of them without creating it.
 */
function evilPickles(marker: string): Array<[string, Uint8Array, RegExp]> {
  const touch = `touch ${marker}`;
  const exec = `open(${JSON.stringify(marker)}, "w").close()`;
  const b = () => new PickleBuilder().proto();
  const stackGlobal = (p: PickleBuilder, module: string, name: string) => p.str(module).str(name).raw(0x93);
  return [
    [
      "GLOBAL os.system + REDUCE",
      b().global("os", "system").str(touch).raw(0x85).reduce().stop().bytes(),
      /0x63 'GLOBAL' at byte 2 refers to os\.system, which is not allowed/,
    ],
    [
      "GLOBAL posix.system + REDUCE",
      b().global("posix", "system").str(touch).raw(0x85).reduce().stop().bytes(),
      /refers to posix\.system, which is not allowed/,
    ],
    [
      "GLOBAL builtins.eval + REDUCE",
      b()
        .global("builtins", "eval")
        .str(`__import__("os").system(${JSON.stringify(touch)})`)
        .raw(0x85)
        .reduce()
        .stop()
        .bytes(),
      /refers to builtins\.eval, which is not allowed/,
    ],
    [
      "GLOBAL builtins.exec + REDUCE",
      b().global("builtins", "exec").str(exec).raw(0x85).reduce().stop().bytes(),
      /refers to builtins\.exec, which is not allowed/,
    ],
    [
      "STACK_GLOBAL subprocess.call + REDUCE",
      stackGlobal(b(), "subprocess", "call").mark().str("touch").str(marker).raw(0x6c).raw(0x85).reduce().stop().bytes(),
      /0x93 'STACK_GLOBAL' .*refers to subprocess\.call, which is not allowed/,
    ],
    ["STACK_GLOBAL builtins.getattr chain", stackGlobal(b(), "builtins", "getattr").stop().bytes(), /refers to builtins\.getattr, which is not allowed/],
    [
      "INST os.system (protocol 0 call)",
      new PickleBuilder()
        .mark()
        .str(touch)
        .raw(0x69, ...utf8.encode("os\nsystem\n"))
        .stop()
        .bytes(),
      /0x69 'INST' at byte \d+ is not supported by this safe reader/,
    ],
    ["OBJ on a class", b().mark().global("collections", "OrderedDict").raw(0x6f).stop().bytes(), /0x6f 'OBJ' at byte \d+ is not supported/],
    ["NEWOBJ on a class", b().global("collections", "OrderedDict").emptyTuple().raw(0x81).stop().bytes(), /0x81 'NEWOBJ' at byte \d+ is not supported/],
    [
      "NEWOBJ_EX on a class",
      b().global("collections", "OrderedDict").emptyTuple().emptyDict().raw(0x92).stop().bytes(),
      /0x92 'NEWOBJ_EX' at byte \d+ is not supported/,
    ],
    ["EXT1 (the copyreg extension registry)", b().raw(0x82, 1).stop().bytes(), /0x82 'EXT1' at byte 2 is not supported/],
    ["EXT4", b().raw(0x84, 1, 0, 0, 0).stop().bytes(), /0x84 'EXT4' at byte 2 is not supported/],
    [
      "text PERSID",
      b()
        .raw(0x50, ...utf8.encode("x\n"))
        .stop()
        .bytes(),
      /0x50 'PERSID' at byte 2 is not supported/,
    ],
    [
      "BUILD with __setstate__-style state",
      b().global("collections", "OrderedDict").emptyTuple().reduce().str(exec).raw(0x62).stop().bytes(),
      /'BUILD' .*can only set dict state on a dict/,
    ],
    ["REDUCE of a string", b().str("os.system").str(touch).raw(0x85).reduce().stop().bytes(), /'REDUCE' .*cannot call a/],
    ["GLOBAL torch.load (nested unpickling)", b().global("torch", "load").stop().bytes(), /refers to torch\.load, which is not allowed/],
    [
      "GLOBAL torch.storage._load_from_bytes",
      b().global("torch.storage", "_load_from_bytes").stop().bytes(),
      /refers to torch\.storage\._load_from_bytes, which is not allowed/,
    ],
    [
      "GLOBAL numpy.core.multiarray._reconstruct",
      b().global("numpy.core.multiarray", "_reconstruct").stop().bytes(),
      /refers to numpy\.core\.multiarray\._reconstruct, which is not allowed/,
    ],
    [
      "GLOBAL with a newline-smuggled name",
      b()
        .raw(0x63, ...utf8.encode("torch._utils\n_rebuild_tensor_v2 os\n"))
        .stop()
        .bytes(),
      /refers to torch\._utils\._rebuild_tensor_v2 os, which is not allowed/,
    ],
  ];
}

describe("hostile pickles are refused and never executed", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "lowrank-evil-pickle-"));
  const marker = path.join(dir, "PWNED");
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.each(evilPickles(marker))("%s", async (_what, pickle, pattern) => {
    const file = path.join(dir, "evil.pt");
    writeFileSync(file, torchZip(pickle, {}));
    const error = await captureLowrankRejection(readTorchStateDict(file));
    expect(error.code).toBe("PICKLE_INVALID");
    expect(error.usage).toBe(true);
    expect(error.message.startsWith(`${file}: `)).toBe(true);
    expect(error.message).not.toMatch(/[\r\n]/);
    expect(error.message).toMatch(pattern);
    expect(existsSync(marker)).toBe(false);
  });

  it("the payload inside a real torch.save archive is refused too (a fixture with its first GLOBAL swapped)", async () => {
    const good = Buffer.from(fixture("gpt2-tiny-lora-bin/adapter_model.bin"));
    const text = good.toString("latin1");
    const original = "torch._utils\n_rebuild_tensor_v2";
    expect(text.includes(original)).toBe(true);
    const file = path.join(dir, "adapter_model.bin");
    writeFileSync(file, Buffer.from(text.replace(original, "posix\nsystem\n".padEnd(original.length, "_")), "latin1"));
    const error = await captureLowrankRejection(readTorchStateDict(file));
    expect(error.code).toBe("PICKLE_INVALID");
    expect(error.message).toMatch(/refers to posix\.system\b.*which is not allowed/);
    expect(existsSync(marker)).toBe(false);
  });
});
