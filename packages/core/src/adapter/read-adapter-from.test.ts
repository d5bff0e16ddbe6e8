import { readFile } from "node:fs/promises";
import path from "node:path";
import { expect, test } from "vitest";
import type { FileSource } from "../files/file-source.js";
import { parseSafetensors } from "../formats/safetensors/parse-safetensors.js";
import { readSafetensors } from "../formats/safetensors/safetensors-file.js";
import { requireFixture } from "../testing/fixtures.js";
import { captureLowrankRejection } from "../testing/capture-error.js";
import { readAdapter } from "./read-adapter.js";
import { readAdapterFrom } from "./read-adapter-from.js";

/** A source over an in-memory table of files (as a page would hold them). */
function memorySource(files: Record<string, Uint8Array | string>, label = "https://example.test/a/"): FileSource {
  return {
    label,
    read: async (name) => {
      const file = files[name];
      return typeof file === "string" ? new TextEncoder().encode(file) : file;
    },
  };
}

async function fixtureFiles(name: string): Promise<Record<string, Uint8Array>> {
  const dir = requireFixture(name);
  return {
    "adapter_config.json": await readFile(path.join(dir, "adapter_config.json")),
    "adapter_model.safetensors": await readFile(path.join(dir, "adapter_model.safetensors")),
  };
}

test.each(["gpt2-tiny-lora", "llama-tiny-embed-lora", "gpt2-tiny-dora"])("readAdapterFrom gives what readAdapter reads from the folder (%s)", async (name) => {
  const fromBytes = await readAdapterFrom(memorySource(await fixtureFiles(name)));
  const fromFolder = await readAdapter(requireFixture(name));
  expect(fromBytes.config).toEqual(fromFolder.config);
  expect([...fromBytes.tensors.keys()]).toEqual([...fromFolder.tensors.keys()]);
  for (const [key, t] of fromFolder.tensors) {
    const other = fromBytes.tensors.get(key)!;
    expect([other.dtype, other.shape]).toEqual([t.dtype, t.shape]);
    expect(Buffer.from(other.data).equals(Buffer.from(t.data))).toBe(true);
  }
});

test("parseSafetensors applies the file reader's checks: a truncated file names itself", async () => {
  const file = path.join(requireFixture("gpt2-tiny-lora"), "adapter_model.safetensors");
  const bytes = new Uint8Array(await readFile(file));
  const parsed = parseSafetensors(bytes, "a.safetensors");
  expect([...parsed.tensors.keys()]).toEqual([...(await readSafetensors(file)).tensors.keys()]);
  expect(() => parseSafetensors(bytes.subarray(0, bytes.byteLength - 3), "cut.safetensors")).toThrow(/^cut\.safetensors: /);
});

test("readAdapterFrom: missing files, the legacy .bin, bad JSON and corrupt weights are one-line errors naming the file", async () => {
  const files = await fixtureFiles("gpt2-tiny-lora");
  const message = async (source: FileSource) => (await captureLowrankRejection(readAdapterFrom(source))).message;
  expect(await message(memorySource({}))).toBe("https://example.test/a/: has no adapter_config.json");
  expect(await message(memorySource({ "adapter_config.json": files["adapter_config.json"]! }))).toBe(
    "https://example.test/a/: has no adapter_model.safetensors",
  );
  expect(await message(memorySource({ "adapter_config.json": files["adapter_config.json"]!, "adapter_model.bin": "PK" }))).toMatch(
    /has only the legacy adapter_model\.bin, read from folders in Node; convert it with `lowrank convert --to peft`$/,
  );
  expect(await message(memorySource({ ...files, "adapter_config.json": "{ not json" }))).toMatch(
    /^https:\/\/example\.test\/a\/adapter_config\.json: not valid JSON/,
  );
  const corrupt = await message(memorySource({ ...files, "adapter_model.safetensors": new Uint8Array([1, 2, 3]) }, "dropped files"));
  expect(corrupt).toMatch(/^dropped files\/adapter_model\.safetensors: /);
  expect(corrupt).not.toContain("\n");
});
