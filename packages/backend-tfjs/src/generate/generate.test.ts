import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, test } from "vitest";
import { readAdapter } from "@lowrank/core";
import { requireFixture } from "@lowrank/core/testing";
import { selectEngine } from "../engine/select-engine.js";
import { attachAdapter } from "../lora/attach-adapter.js";
import { loadModel } from "../models/load-model.js";
import { generate } from "./generate.js";

beforeAll(async () => {
  await selectEngine();
});

describe.each([
  ["gpt2-tiny", "gpt2-tiny-lora"],
  ["llama-tiny", "llama-tiny-lora"],
  // A sliding window of 4: the cache keeps every key, the mask must still hide those past the window.
  ["mistral-sw-tiny", "mistral-sw-tiny-lora"],
])("generation on %s", (base, adapterName) => {
  test("the KV cache gives the same tokens as recomputing, greedy and sampled, with no leaks", async () => {
    const model = await loadModel(requireFixture(base));
    attachAdapter(model, await readAdapter(requireFixture(adapterName)));
    const prompt = [5, 17, 42, 99, 3];
    generate(model, prompt, { maxNewTokens: 2 }); // builds the model's cached weight transposes once
    const before = tf.memory().numTensors;
    for (const sampling of [{}, { temperature: 0.9, topK: 50, topP: 0.9, seed: 3 }, { temperature: 1.3, seed: 8 }]) {
      const cached = generate(model, prompt, { maxNewTokens: 24, eosTokenId: -1, ...sampling });
      const uncached = generate(model, prompt, { maxNewTokens: 24, eosTokenId: -1, useCache: false, ...sampling });
      expect(cached).toHaveLength(24);
      expect(cached).toEqual(uncached);
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  test("stops at EOS and samples differently with another seed", async () => {
    const model = await loadModel(requireFixture(base));
    const greedy = generate(model, [1, 2, 3], { maxNewTokens: 10, eosTokenId: -1 });
    const stopAt = greedy[3];
    const stopped = generate(model, [1, 2, 3], { maxNewTokens: 10, eosTokenId: stopAt });
    expect(stopped[stopped.length - 1]).toBe(stopAt);
    expect(stopped.length).toBeLessThanOrEqual(4);
    const a = generate(model, [1, 2, 3], { maxNewTokens: 16, temperature: 2, seed: 1, eosTokenId: -1 });
    const b = generate(model, [1, 2, 3], { maxNewTokens: 16, temperature: 2, seed: 2, eosTokenId: -1 });
    expect(a).not.toEqual(b);
  });
});
