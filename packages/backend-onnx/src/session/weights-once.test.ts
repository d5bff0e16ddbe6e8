import { readFile } from "node:fs/promises";
import { expect, test } from "vitest";
import { readAdapter, readSafetensors, toFloat32, type LoraAdapter } from "@lowrank/core";
import { idRows, maxAbsDiff, requireFixture } from "@lowrank/core/testing";
import { idsTensor } from "./ort-session.js";
import { OnnxLoraSession } from "./onnx-lora-session.js";

// A session keeps no copy of the weights in JS: adapters loaded later are bound against a graph
// without weight values, and merge(name) gets the model again through reloadModel.
test("adapters loaded later bind without the weights in JS; merge reloads the model once per merge", async () => {
  const file = requireFixture("llama-tiny", "model.onnx");
  const bytes = await readFile(file);
  let reloads = 0;
  const embed = await readAdapter(requireFixture("llama-tiny-embed-lora"));
  const session = await OnnxLoraSession.create(new Uint8Array(bytes), {
    label: file,
    modelDir: requireFixture("llama-tiny"),
    adapters: { embed },
    reloadModel: async () => {
      reloads++;
      return new Uint8Array(bytes);
    },
  });
  try {
    const cases = (await readSafetensors(requireFixture("cases", "llama-tiny-embed-lora.safetensors"))).tensors;
    const feeds = { input_ids: idsTensor(idRows(cases.get("input_ids")!)) };
    // The adapter saved the embedding unchanged (PEFT's save_embedding_layers): loaded again after
    // creation, its copy is recognised as the stored weight by fingerprint, not refused.
    session.loadAdapter("again", embed);
    const again = (await session.run(feeds, { adapter: "again" })).logits!.data as Float32Array;
    expect(maxAbsDiff(again, toFloat32(cases.get("adapted_logits")!))).toBeLessThanOrEqual(1e-4);
    // A changed copy is a real replacement, which this session was not made to take: refused in one line.
    const changed: LoraAdapter = { ...embed, tensors: new Map(embed.tensors) };
    for (const [key, t] of embed.tensors) {
      if (!key.includes("embed_tokens") || key.includes("lora_")) continue;
      const values = toFloat32(t).slice();
      values[0]! += 1;
      changed.tensors.set(key, { dtype: "F32", shape: t.shape, data: new Uint8Array(values.buffer) });
    }
    expect(() => session.loadAdapter("changed", changed)).toThrow(
      /adapter "changed" replaces "[^"]*embed_tokens\.weight" .*which this session cannot take at run time/,
    );
    expect(reloads).toBe(0);
    await session.merge("again");
    expect(reloads).toBe(1);
    const merged = (await session.run(feeds, { adapter: "again" })).logits!.data as Float32Array;
    expect(maxAbsDiff(merged, toFloat32(cases.get("merged_logits")!))).toBeLessThanOrEqual(1e-4);
  } finally {
    await session.release();
  }
});
