import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { readAdapter } from "@lowrank/core";
import { maxAbsDiff, requireFixture } from "@lowrank/core/testing";
import { selectEngine } from "../engine/select-engine.js";
import { generate } from "../generate/generate.js";
import { inferenceContext } from "../layers/lora-branch.js";
import { attachAdapter } from "../lora/attach-adapter.js";
import { loadModel } from "./load-model.js";
import type { KvCache } from "./model.js";

const tmp = mkdtempSync(path.join(os.tmpdir(), "lowrank-decoder-"));
beforeAll(async () => {
  await selectEngine();
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe.each([
  // Fused qkv_proj / gate_up_proj, split after LoRA.
  ["phi3-tiny", "phi3-tiny-lora"],
  // Scaled embeddings, one key/value head.
  ["gemma-tiny", "gemma-tiny-lora"],
  // A window of 4 on even layers only: 5 prompt tokens + 16 new ones run well past it.
  ["gemma2-tiny", "gemma2-tiny-lora"],
])("generation on %s", (base, adapterName) => {
  test("the KV cache gives the same 16 greedy tokens as recomputing, with no leaks", async () => {
    const model = await loadModel(requireFixture(base));
    attachAdapter(model, await readAdapter(requireFixture(adapterName)));
    const prompt = [5, 17, 42, 99, 3];
    generate(model, prompt, { maxNewTokens: 2 }); // builds the model's cached weight transposes once
    const before = tf.memory().numTensors;
    const cached = generate(model, prompt, { maxNewTokens: 16, eosTokenId: -1 });
    const uncached = generate(model, prompt, { maxNewTokens: 16, eosTokenId: -1, useCache: false });
    expect(cached).toHaveLength(16);
    expect(cached).toEqual(uncached);
    expect(tf.memory().numTensors).toBe(before);
  });

  test("logits fed token by token through the cache match one full pass within 1e-5", async () => {
    const model = await loadModel(requireFixture(base));
    attachAdapter(model, await readAdapter(requireFixture(adapterName)));
    const ids = [5, 17, 42, 99, 3, 250, 7, 311, 64, 1, 480, 12];
    const prompt = 5;
    const ctx = inferenceContext();
    const full = tf.tidy(() => model.forward({ inputIds: tf.tensor2d([ids], undefined, "int32") }, ctx).logits.dataSync() as Float32Array);
    const vocab = model.vocabSize;
    const stepped = tf.tidy(() => {
      let cache: KvCache = { keys: [], values: [], length: 0 };
      const rows: number[] = [];
      for (let start = 0; start < ids.length; start = start === 0 ? prompt : start + 1) {
        const chunk = ids.slice(start, start === 0 ? prompt : start + 1);
        const out = model.forward({ inputIds: tf.tensor2d([chunk], undefined, "int32"), cache }, ctx);
        rows.push(...(out.logits.dataSync() as Float32Array));
        cache = out.cache!;
      }
      return Float32Array.from(rows);
    });
    expect(stepped).toHaveLength(ids.length * vocab);
    expect(maxAbsDiff(stepped, full)).toBeLessThanOrEqual(1e-5);
  });
});

test("Phi-3 rope_scaling (su, longrope, ...) is refused with one clear error", async () => {
  const dir = path.join(tmp, "phi3-longrope");
  const source = requireFixture("phi3-tiny");
  mkdirSync(dir);
  copyFileSync(path.join(source, "model.safetensors"), path.join(dir, "model.safetensors"));
  const config = JSON.parse(readFileSync(path.join(source, "config.json"), "utf8")) as Record<string, unknown>;
  writeFileSync(path.join(dir, "config.json"), JSON.stringify({ ...config, rope_scaling: { type: "longrope", short_factor: [1], long_factor: [1] } }));
  await expect(loadModel(dir)).rejects.toThrow(/Phi-3 `rope_scaling` type "longrope" is not supported/);
});
