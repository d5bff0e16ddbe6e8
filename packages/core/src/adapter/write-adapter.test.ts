import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { FIXTURE_PAIRS } from "../testing/fixture-pairs.js";
import { requireFixture } from "../testing/fixtures.js";
import { LowrankError } from "../errors/lowrank-error.js";
import { parseAdapterKey } from "./adapter-keys.js";
import { readAdapter } from "./read-adapter.js";
import { writeAdapter } from "./write-adapter.js";

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "lowrank-adapter-"));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe("adapter folders", () => {
  test.each(FIXTURE_PAIRS.filter((p) => p.key !== "gpt2_bin").map((p) => p.adapter))(
    "%s: read then written is byte-identical to PEFT's files",
    async (name) => {
      const out = path.join(tmp, name);
      await writeAdapter(out, await readAdapter(requireFixture(name)));
      expect((await readdir(out)).sort()).toEqual(["adapter_config.json", "adapter_model.safetensors"]);
      for (const file of ["adapter_config.json", "adapter_model.safetensors"]) {
        expect(Buffer.compare(await readFile(path.join(out, file)), await readFile(requireFixture(name, file))), file).toBe(0);
      }
    },
  );

  test("the legacy adapter_model.bin reads as the same tensors and converts to PEFT's safetensors bytes", async () => {
    const out = path.join(tmp, "from-bin");
    const adapter = await readAdapter(requireFixture("gpt2-tiny-lora-bin"));
    expect(adapter.tensors.size).toBe(12);
    await writeAdapter(out, adapter);
    expect(
      Buffer.compare(
        await readFile(path.join(out, "adapter_model.safetensors")),
        await readFile(requireFixture("gpt2-tiny-lora", "adapter_model.safetensors")),
      ),
    ).toBe(0);
  });

  test("missing folder or files name what is missing", async () => {
    await expect(readAdapter(path.join(tmp, "nope"))).rejects.toThrow(/nope: not an adapter folder/);
    await expect(readAdapter(requireFixture("gpt2-tiny"))).rejects.toThrow(/has no adapter_config.json/);
    await expect(readAdapter(requireFixture("gpt2-tiny"))).rejects.toBeInstanceOf(LowrankError);
  });
});

describe("PEFT key names", () => {
  test.each([
    ["base_model.model.transformer.h.0.attn.c_attn.lora_A.weight", { role: "lora_A", module: "transformer.h.0.attn.c_attn" }],
    ["base_model.model.transformer.h.0.attn.c_attn.lora_B.weight", { role: "lora_B", module: "transformer.h.0.attn.c_attn" }],
    ["base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight", { role: "lora_A", module: "model.layers.0.self_attn.q_proj" }],
    ["base_model.model.x.lora_B.bias", { role: "lora_B_bias", module: "x" }],
    ["base_model.model.model.embed_tokens.lora_embedding_A", { role: "lora_embedding_A", module: "model.embed_tokens" }],
    ["base_model.model.model.embed_tokens.lora_embedding_B", { role: "lora_embedding_B", module: "model.embed_tokens" }],
    ["base_model.model.transformer.h.0.mlp.c_fc.lora_magnitude_vector", { role: "magnitude", module: "transformer.h.0.mlp.c_fc" }],
    ["base_model.model.transformer.h.0.mlp.c_fc.lora_magnitude_vector.weight", { role: "magnitude", module: "transformer.h.0.mlp.c_fc" }],
    ["base_model.model.classifier.dense.weight", { role: "replacement", baseKey: "classifier.dense.weight" }],
    ["base_model.model.model.embed_tokens.base_layer.weight", { role: "replacement", baseKey: "model.embed_tokens.weight" }],
    ["base_model.model.classifier.modules_to_save.default.out_proj.bias", { role: "replacement", baseKey: "classifier.out_proj.bias" }],
    ["base_model.model.transformer.h.0.attn.c_attn.base_layer.bias", { role: "replacement", baseKey: "transformer.h.0.attn.c_attn.bias" }],
    ["transformer.h.0.attn.c_attn.lora_A", undefined],
  ])("%s", (key, expected) => {
    expect(parseAdapterKey(key)).toEqual(expected);
  });
});
