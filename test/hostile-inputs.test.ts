// Hostile inputs through the `lowrank` command: adapters that do not fit the base, files that are
// not ONNX, pickles that would run code, forged safetensors and configs. Each is one line on stderr
// ("lowrank: error: ..." naming the file, field or module), exit code 2, and no output left behind.
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { float32Tensor, readSafetensors, type Tensor } from "@lowrank/core";
import { int64Tensor, serializeSafetensors } from "@lowrank/core/internal";
import { requireFixture } from "@lowrank/core/testing";
import { lowrank, type CliRun } from "./cli-helpers.js";

const tmp = mkdtempSync(path.join(os.tmpdir(), "lowrank-hostile-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let counter = 0;
/** A fresh, empty folder for one command's outputs: after a failure it must still be empty. */
function outDir(): string {
  const dir = path.join(tmp, `out-${counter++}`);
  mkdirSync(dir);
  return dir;
}

function expectRefused(run: CliRun, outputs: string, pattern: RegExp): void {
  expect(run.status, run.stderr).toBe(2);
  expect(run.stderr).toMatch(/^lowrank: error: [^\n]+\n$/);
  expect(run.stderr).toMatch(pattern);
  expect(run.stderr).not.toMatch(/\n\s+at /);
  expect(run.stdout).toBe("");
  expect(readdirSync(outputs), `${outputs} should be left empty`).toEqual([]);
}

const ids = path.join(tmp, "ids.json");
writeFileSync(ids, "[[1, 2, 3, 4], [5, 6, 7, 8]]");

/** Every way an adapter reaches a base: merged, run unmerged and merged (tfjs), run and merged on ONNX. */
function throughEveryCommand(adapter: string): Array<[string, (out: string) => string[]]> {
  const base = requireFixture("gpt2-tiny");
  const onnx = requireFixture("gpt2-tiny", "model.onnx");
  return [
    ["merge", (out) => ["merge", "--base", base, "--adapter", adapter, "--out", path.join(out, "merged")]],
    ["predict", (out) => ["predict", "--model", base, "--adapter", adapter, "--input-ids", ids, "--output", path.join(out, "p.safetensors")]],
    [
      "predict --merge",
      (out) => ["predict", "--model", base, "--adapter", adapter, "--merge", "--input-ids", ids, "--output", path.join(out, "p.safetensors")],
    ],
    [
      "predict --backend onnx",
      (out) => ["predict", "--backend", "onnx", "--model", onnx, "--adapter", adapter, "--input-ids", ids, "--output", path.join(out, "p.safetensors")],
    ],
    ["onnx merge", (out) => ["onnx", "merge", "--model", onnx, "--adapter", adapter, "--out", path.join(out, "merged.onnx")]],
  ];
}

describe("adapters whose shapes do not fit the base", () => {
  const source = requireFixture("gpt2-tiny-lora");
  let tensors: Map<string, Tensor>;
  beforeAll(async () => {
    tensors = (await readSafetensors(path.join(source, "adapter_model.safetensors"))).tensors;
  });
  const key = (module: string, factor: "A" | "B") => `base_model.model.transformer.h.${module}.lora_${factor}.weight`;
  const filled = (shape: number[]) => float32Tensor(new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(0.01), shape);

  /** The fixture adapter with some tensors replaced (undefined: removed). */
  function adapterWith(name: string, edits: Record<string, Tensor | undefined>): string {
    const dir = path.join(tmp, `adapter-${name}`);
    mkdirSync(dir, { recursive: true });
    copyFileSync(path.join(source, "adapter_config.json"), path.join(dir, "adapter_config.json"));
    const next = new Map(tensors);
    for (const [k, t] of Object.entries(edits)) {
      if (t) next.set(k, t);
      else next.delete(k);
    }
    writeFileSync(path.join(dir, "adapter_model.safetensors"), serializeSafetensors(next, { format: "pt" }));
    return dir;
  }

  // [case, edits, message of the tfjs / core path, message of the ONNX path]
  const CASES: Array<[string, () => Record<string, Tensor | undefined>, RegExp, RegExp]> = [
    [
      "lora_B with the wrong output size",
      () => ({ [key("0.attn.c_attn", "B")]: filled([128, 4]) }),
      /module "transformer\.h\.0\.attn\.c_attn": factors \[4, 64\] · \[128, 4\] do not fit the base layer \(in 64, out 192\)/,
      /module "transformer\.h\.0\.attn\.c_attn" maps to initializer "[^"]+" of shape \[64,192\], but the adapter needs \[64,128\]/,
    ],
    [
      "lora_A with the wrong input size",
      () => ({ [key("1.mlp.c_proj", "A")]: filled([4, 64]) }),
      /module "transformer\.h\.1\.mlp\.c_proj": factors \[4, 64\] · \[64, 4\] do not fit the base layer \(in 256, out 64\)/,
      /module "transformer\.h\.1\.mlp\.c_proj" maps to initializer "[^"]+" of shape \[256,64\], but the adapter needs \[64,64\]/,
    ],
    [
      "factors of different ranks",
      () => ({ [key("0.attn.c_proj", "A")]: filled([2, 64]) }),
      /module "transformer\.h\.0\.attn\.c_proj": lora_A \[2, 64\] and lora_B \[64, 4\] are not \[r, in\] and \[out, r\]/,
      /module "transformer\.h\.0\.attn\.c_proj": lora_A \[2, 64\] and lora_B \[64, 4\] are not \[r, in\] and \[out, r\]/,
    ],
    [
      "an integer factor",
      () => ({ [key("0.attn.c_attn", "A")]: int64Tensor(new Array(256).fill(1), [4, 64]) }),
      /module "transformer\.h\.0\.attn\.c_attn" lora_A: dtype I64 is not a floating-point type/,
      /module "transformer\.h\.0\.attn\.c_attn" lora_A: dtype I64 is not a floating-point type/,
    ],
    [
      "a module the base does not have",
      () => ({ [key("7.attn.c_attn", "A")]: tensors.get(key("0.attn.c_attn", "A")), [key("7.attn.c_attn", "B")]: tensors.get(key("0.attn.c_attn", "B")) }),
      /adapts module "transformer\.h\.7\.attn\.c_attn", which the base model does not have/,
      /cannot find the weight of module "transformer\.h\.7\.attn\.c_attn"/,
    ],
    [
      "a three-dimensional factor",
      () => ({ [key("0.attn.c_attn", "A")]: filled([4, 8, 8]) }),
      /module "transformer\.h\.0\.attn\.c_attn": lora_A \[4, 8, 8\] and lora_B \[192, 4\] are not \[r, in\] and \[out, r\]/,
      // The ONNX path names the module, but reads the shape as if it were 2-D (see the report of issue 8).
      /module "transformer\.h\.0\.attn\.c_attn"/,
    ],
    [
      "a missing lora_B",
      () => ({ [key("0.attn.c_attn", "B")]: undefined }),
      /module "transformer\.h\.0\.attn\.c_attn" has lora_A but no lora_B/,
      /module "transformer\.h\.0\.attn\.c_attn"/,
    ],
  ];

  test.each(CASES)("%s: one line naming the module, exit 2, nothing written, through every command", (name, edits, message, onnxMessage) => {
    const adapter = adapterWith(name.replace(/\W+/g, "-"), edits());
    for (const [command, args] of throughEveryCommand(adapter)) {
      const out = outDir();
      const run = lowrank(args(out));
      expectRefused(run, out, command.includes("onnx") ? onnxMessage : message);
    }
  });
});

describe("ONNX files that are not ONNX", () => {
  const model = readFileSync(requireFixture("gpt2-tiny", "model.onnx"));
  const random = Buffer.alloc(5000);
  for (let i = 0, x = 12345; i < random.length; i++) random[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
  const FILES: Array<[string, Buffer, RegExp]> = [
    ["random bytes", random, /not an ONNX model \(/],
    ["a model cut in half", model.subarray(0, model.length >> 1), /not an ONNX model \(the file ends inside a protobuf field: truncated\?\)/],
    ["a model 100 bytes short", model.subarray(0, model.length - 100), /not an ONNX model \(the file ends inside a protobuf field: truncated\?\)/],
    [
      "a safetensors file renamed .onnx",
      readFileSync(requireFixture("gpt2-tiny", "model.safetensors")),
      /not an ONNX model \(it looks like a safetensors file\)/,
    ],
    ["a torch .bin renamed .onnx", readFileSync(requireFixture("gpt2-tiny-lora-bin", "adapter_model.bin")), /not an ONNX model \(it looks like a zip archive/],
    ["an empty file", Buffer.alloc(0), /not an ONNX model \(the file is empty\)/],
  ];

  test.each(FILES)("%s: onnx merge and predict --backend onnx refuse it in one line naming the file", (name, bytes, message) => {
    const file = path.join(tmp, `${name.replace(/\W+/g, "-")}.onnx`);
    writeFileSync(file, bytes);
    const adapter = requireFixture("gpt2-tiny-lora");
    const commands: Array<[string[], RegExp]> = [
      [["onnx", "merge", "--model", file, "--adapter", adapter, "--out"], message],
      [["predict", "--backend", "onnx", "--model", file, "--adapter", adapter, "--input-ids", ids, "--output"], message],
      // Without an adapter the file goes to ONNX Runtime directly; when it refuses, our decoder says why.
      [["predict", "--backend", "onnx", "--model", file, "--input-ids", ids, "--output"], message],
    ];
    for (const [args, pattern] of commands) {
      const out = outDir();
      const run = lowrank([...args, path.join(out, "result")]);
      expectRefused(run, out, pattern);
      expect(run.stderr).toContain(file);
    }
  });
});

describe("legacy .bin / .pt files with pickle opcodes outside the safe subset", () => {
  const marker = path.join(tmp, "PWNED");
  const original = "torch._utils\n_rebuild_tensor_v2";

  /** A real torch.save archive whose first GLOBAL is replaced by `module.name` (same length, zip stays valid). */
  function swapped(fixture: string, module: string, name: string): Buffer {
    const text = readFileSync(fixture).toString("latin1");
    expect(text.includes(original)).toBe(true);
    const replacement = `${module}\n${name}\n`.padEnd(original.length, "_");
    expect(replacement.length).toBe(original.length);
    return Buffer.from(text.replace(original, replacement), "latin1");
  }

  /**
   * A minimal torch.save zip (stored, no compression) whose data.pkl is the classic exploit: GLOBAL
   * os.system, the command, TUPLE1, REDUCE. Python's pickle.loads of that data.pkl creates `marker`
   * (checked by hand with CPython 3.11); lowrank must refuse it without creating it.
   */
  function osSystemArchive(): Buffer {
    const command = Buffer.from(`touch ${marker}`);
    const pickle = Buffer.concat([
      Buffer.from([0x80, 0x02, 0x63]),
      Buffer.from("os\nsystem\n"),
      Buffer.from([0x58]),
      Buffer.from(Uint32Array.of(command.length).buffer),
      command,
      Buffer.from([0x85, 0x52, 0x2e]), // TUPLE1 REDUCE STOP
    ]);
    return zip([
      ["archive/data.pkl", pickle],
      ["archive/version", Buffer.from("3\n")],
    ]);
  }

  const ADAPTERS: Array<[string, () => Buffer, RegExp]> = [
    [
      "GLOBAL os.system in a real adapter_model.bin",
      () => swapped(requireFixture("gpt2-tiny-lora-bin", "adapter_model.bin"), "os", "system"),
      /adapter_model\.bin: .*refers to os\.system\b.*which is not allowed/,
    ],
    [
      "GLOBAL builtins.eval in a real adapter_model.bin",
      () => swapped(requireFixture("gpt2-tiny-lora-bin", "adapter_model.bin"), "builtins", "eval"),
      /refers to builtins\.eval\b.*which is not allowed/,
    ],
    [
      'a handmade archive calling os.system("touch ...")',
      osSystemArchive,
      /adapter_model\.bin: .*0x63 'GLOBAL' at byte 2 refers to os\.system, which is not allowed/,
    ],
  ];

  test.each(ADAPTERS)("%s: inspect and merge refuse it, nothing runs, nothing is written", (name, bytes, message) => {
    const adapter = path.join(tmp, `evil-${name.replace(/\W+/g, "-")}`);
    mkdirSync(adapter);
    copyFileSync(requireFixture("gpt2-tiny-lora-bin", "adapter_config.json"), path.join(adapter, "adapter_config.json"));
    writeFileSync(path.join(adapter, "adapter_model.bin"), bytes());
    const inspect = lowrank(["inspect", adapter]);
    expect(inspect.status, inspect.stderr).toBe(2);
    expect(inspect.stderr).toMatch(/^lowrank: error: [^\n]+\n$/);
    expect(inspect.stderr).toMatch(message);
    const out = outDir();
    expectRefused(lowrank(["merge", "--base", requireFixture("gpt2-tiny"), "--adapter", adapter, "--out", path.join(out, "merged")]), out, message);
    expect(existsSync(marker)).toBe(false);
  });

  test("lowrank import loralib refuses the os.system archive without running it", () => {
    const file = path.join(tmp, "lora_state_dict.pt");
    writeFileSync(file, osSystemArchive());
    const out = outDir();
    const run = lowrank([
      "import",
      "loralib",
      file,
      "--base",
      requireFixture("gpt2-tiny"),
      "--rank",
      "4",
      "--alpha",
      "8",
      "--target-modules",
      "c_attn",
      "--out",
      path.join(out, "adapter"),
    ]);
    expectRefused(run, out, /lora_state_dict\.pt: .*refers to os\.system, which is not allowed/);
    expect(existsSync(marker)).toBe(false);
  });
});

describe("forged safetensors and configs through the command line", () => {
  const base = requireFixture("gpt2-tiny");

  function adapterFolder(name: string, files: { config?: string; weights?: Buffer }): string {
    const dir = path.join(tmp, `forged-${name}`);
    mkdirSync(dir);
    writeFileSync(path.join(dir, "adapter_config.json"), files.config ?? readFileSync(requireFixture("gpt2-tiny-lora", "adapter_config.json")));
    writeFileSync(path.join(dir, "adapter_model.safetensors"), files.weights ?? readFileSync(requireFixture("gpt2-tiny-lora", "adapter_model.safetensors")));
    return dir;
  }
  const weights = () => Buffer.from(readFileSync(requireFixture("gpt2-tiny-lora", "adapter_model.safetensors")));
  /** The fixture's weights with the header edited and written back with its true length. */
  const reheadered = (edit: (header: Record<string, { shape: number[]; data_offsets: number[] }>) => void) => {
    const b = weights();
    const n = Number(b.readBigUInt64LE(0));
    const header = JSON.parse(b.subarray(8, 8 + n).toString("utf8"));
    edit(header);
    const json = Buffer.from(JSON.stringify(header).replace(/(\d)e\+(\d+)/g, (_m, d: string, e: string) => d + "0".repeat(Number(e))));
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(json.length), 0);
    return Buffer.concat([prefix, json, b.subarray(8 + n)]);
  };
  const withLength = (n: bigint) => {
    const b = weights();
    b.writeBigUInt64LE(n, 0);
    return b;
  };
  const config = (patch: Record<string, unknown>) =>
    JSON.stringify({ ...JSON.parse(readFileSync(requireFixture("gpt2-tiny-lora", "adapter_config.json"), "utf8")), ...patch });

  const CASES: Array<[string, { config?: string; weights?: Buffer }, RegExp]> = [
    [
      "a header length of 2^63",
      { weights: withLength(2n ** 63n) },
      /adapter_model\.safetensors: not a valid safetensors file: header length 9223372036854775808 exceeds the 100000000-byte limit/,
    ],
    [
      "a header length beyond the file",
      { weights: withLength(99_000_000n) },
      /adapter_model\.safetensors: not a valid safetensors file: header length 99000000 is beyond the end of the \d+-byte file/,
    ],
    ["a truncated file", { weights: weights().subarray(0, 600) }, /adapter_model\.safetensors: not a valid safetensors file: /],
    [
      "huge dims",
      { weights: reheadered((h) => void (h["base_model.model.transformer.h.0.attn.c_attn.lora_A.weight"]!.shape = [4e15, 64])) },
      new RegExp(
        /adapter_model\.safetensors: not a valid safetensors file: tensor "base_model\.model\.transformer\.h\.0\.attn\.c_attn\.lora_A\.weight" /.source +
          /of shape \[4000000000000000, 64\] needs more bytes than the file holds/.source,
      ),
    ],
    [
      "negative dims",
      { weights: reheadered((h) => void (h["base_model.model.transformer.h.0.attn.c_attn.lora_A.weight"]!.shape = [-4, -64])) },
      /not a valid safetensors file: tensor "base_model\.model\.transformer\.h\.0\.attn\.c_attn\.lora_A\.weight" has an invalid shape \[-4,-64\]/,
    ],
    [
      "overlapping offsets",
      {
        weights: reheadered((h) => {
          const entries = Object.entries(h).filter(([k]) => k !== "__metadata__");
          entries[1]![1].data_offsets = [...entries[0]![1].data_offsets];
        }),
      },
      /not a valid safetensors file: .*(overlap|needs \d+ bytes but data_offsets span)/,
    ],
    ["r = 0", { config: config({ r: 0 }) }, /adapter_config\.json: `r` must be a positive integer, got 0/],
    [
      "an unknown peft_type",
      { config: config({ peft_type: "PROMPT_TUNING" }) },
      /adapter_config\.json: `peft_type` is "PROMPT_TUNING"; lowrank reads LoRA adapters \("LORA"\) only/,
    ],
    [
      "target_modules that is not a regex",
      { config: config({ target_modules: "(c_attn" }) },
      /adapter_config\.json: `target_modules` "\(c_attn" is not a valid regular expression/,
    ],
    [
      "a layers_pattern that is not a regex",
      { config: config({ layers_pattern: "h[", layers_to_transform: [0] }) },
      /adapter_config\.json: `layers_pattern` "h\[" is not a valid regular expression/,
    ],
    [
      "a rank_pattern key that is not a regex",
      { config: config({ rank_pattern: { "c_attn)": 2 } }) },
      /adapter_config\.json: `rank_pattern` key "c_attn\)" is not a valid regular expression/,
    ],
    ["a wrong type", { config: config({ lora_alpha: "eight" }) }, /adapter_config\.json: `lora_alpha` must be a number, got "eight"/],
  ];

  test.each(CASES)("%s: inspect and merge refuse it in one line, nothing written", (name, files, message) => {
    const adapter = adapterFolder(name.replace(/\W+/g, "-"), files);
    const inspect = lowrank(["inspect", adapter]);
    expect(inspect.status, inspect.stderr).toBe(2);
    expect(inspect.stderr).toMatch(/^lowrank: error: [^\n]+\n$/);
    expect(inspect.stderr).toMatch(message);
    const out = outDir();
    expectRefused(lowrank(["merge", "--base", base, "--adapter", adapter, "--out", path.join(out, "merged")]), out, message);
  });
});

// ---------- a minimal zip writer (stored members), enough for torch.save-like archives ----------

function crc32(bytes: Buffer): number {
  let crc = ~0;
  for (const b of bytes) {
    crc ^= b;
    for (let k = 0; k < 8; k++) crc = (crc >>> 1) ^ (0xedb88320 & -(crc & 1));
  }
  return ~crc >>> 0;
}

function zip(members: Array<[string, Buffer]>): Buffer {
  const locals: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const [name, data] of members) {
    const nameBytes = Buffer.from(name);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt32LE(crc32(data), 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(nameBytes.length, 26);
    const entry = Buffer.alloc(46);
    entry.writeUInt32LE(0x02014b50, 0);
    entry.writeUInt16LE(20, 4);
    entry.writeUInt16LE(20, 6);
    entry.writeUInt32LE(crc32(data), 16);
    entry.writeUInt32LE(data.length, 20);
    entry.writeUInt32LE(data.length, 24);
    entry.writeUInt16LE(nameBytes.length, 28);
    entry.writeUInt32LE(offset, 42);
    locals.push(local, nameBytes, data);
    central.push(entry, nameBytes);
    offset += 30 + nameBytes.length + data.length;
  }
  const cd = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(members.length, 8);
  end.writeUInt16LE(members.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}
