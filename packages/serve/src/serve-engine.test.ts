import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { OnnxBackend } from "@lowrank/backend-onnx";
import { readAdapter, silentLogger } from "@lowrank/core";
import { requireFixture } from "@lowrank/core/testing";
import { ServeEngine, type GenerationRequest } from "./serve-engine.js";

const MODEL = requireFixture("llama-tiny");
const ADAPTERS = { plain: requireFixture("llama-tiny-lora"), embed: requireFixture("llama-tiny-embed-lora") };
const PROMPTS = [[5, 9, 200, 31, 7, 88], [1, 2, 3], [400, 12, 77, 3, 3, 90, 14, 15, 16, 301], [42], [7, 7, 7, 7, 8]];

/** Greedy tokens of one prompt alone, through the onnx backend's generate (its own session, no batch). */
async function solo(prompt: number[], adapter: keyof typeof ADAPTERS | null, maxNewTokens: number): Promise<number[]> {
  const backend = new OnnxBackend();
  await backend.init({ logger: silentLogger });
  const loaded = adapter === null ? undefined : await readAdapter(ADAPTERS[adapter]);
  return (await backend.generate({ model: MODEL, promptIds: prompt, maxNewTokens, ...(loaded ? { adapter: loaded } : {}) })).ids;
}

async function collect(engine: ServeEngine, request: GenerationRequest) {
  const generation = await engine.generate(request);
  const tokens: number[] = [];
  for await (const t of generation.tokens) tokens.push(t.token);
  return { tokens, ...(await generation.done) };
}

describe("ServeEngine: continuous batching of mixed-adapter requests", () => {
  let engine: ServeEngine;
  beforeAll(async () => {
    engine = await ServeEngine.create({ model: MODEL, adapters: ADAPTERS, maxBatch: 4 });
  });
  afterAll(async () => {
    await engine.close();
  });

  test("every greedy answer equals the prompt's answer alone, whatever ran beside it (rows joining and leaving, three adapters in one batch)", async () => {
    const names = [null, "plain", "embed", "plain", "embed", null, "plain"] as const;
    // Different lengths, so rows leave at different steps and waiting requests join the running batch.
    const jobs = names.map((adapter, i) => ({ adapter, prompt: PROMPTS[i % PROMPTS.length]!, maxTokens: 3 + ((i * 5) % 9) }));
    const results = await Promise.all(jobs.map((j) => collect(engine, { adapter: j.adapter, promptIds: j.prompt, maxTokens: j.maxTokens })));
    for (const [i, j] of jobs.entries()) {
      expect(results[i]!.tokens, `request ${i} (${j.adapter})`).toEqual(await solo(j.prompt, j.adapter, j.maxTokens));
      expect(results[i]!).toMatchObject({ promptTokens: j.prompt.length, completionTokens: j.maxTokens, finishReason: "length" });
    }
    // The adapters matter: the same prompt differs between them.
    expect(await solo(PROMPTS[0]!, "plain", 6)).not.toEqual(await solo(PROMPTS[0]!, null, 6));
    expect(engine.load).toEqual({ running: 0, waiting: 0 });
  });

  test("a cancelled request stops at the next token; the others finish unchanged", async () => {
    const controller = new AbortController();
    const long = await engine.generate({ adapter: "plain", promptIds: PROMPTS[2]!, maxTokens: 40, signal: controller.signal });
    const other = collect(engine, { adapter: "embed", promptIds: PROMPTS[0]!, maxTokens: 8 });
    let seen = 0;
    for await (const _ of long.tokens) if (++seen === 2) controller.abort();
    expect((await long.done).finishReason).toBe("cancelled");
    expect((await long.done).completionTokens).toBeLessThan(40);
    expect((await other).tokens).toEqual(await solo(PROMPTS[0]!, "embed", 8));
  });

  test("log-probabilities: the chosen token's and the top alternatives, the greedy token the most likely", async () => {
    const generation = await engine.generate({ adapter: null, promptIds: PROMPTS[1]!, maxTokens: 3, logprobs: 2 });
    for await (const t of generation.tokens) {
      expect(t.logprob!.top).toHaveLength(2);
      expect(t.logprob!.top[0]!.token).toBe(t.token);
      expect(t.logprob!.logprob).toBeCloseTo(t.logprob!.top[0]!.logprob, 12);
      expect(t.logprob!.top[1]!.logprob).toBeLessThanOrEqual(t.logprob!.logprob);
    }
  });

  test("an unknown adapter is a 404", async () => {
    await expect(engine.generate({ adapter: "nope", promptIds: [1], maxTokens: 1 })).rejects.toMatchObject({ status: 404 });
  });
});

describe("ServeEngine limits and shutdown", () => {
  test("a full queue refuses with 429; close({ cancel }) ends the running and waiting requests at once", async () => {
    const engine = await ServeEngine.create({ model: MODEL, adapters: { plain: ADAPTERS.plain }, maxBatch: 1, maxWaiting: 1 });
    const running = await engine.generate({ adapter: "plain", promptIds: PROMPTS[0]!, maxTokens: 100 });
    const waiting = await engine.generate({ adapter: null, promptIds: PROMPTS[1]!, maxTokens: 100 });
    await expect(engine.generate({ adapter: null, promptIds: PROMPTS[2]!, maxTokens: 5 })).rejects.toMatchObject({ status: 429, code: "overloaded" });
    // Closing once the first request has produced a token: both end now, not after 100 tokens each.
    await running.tokens[Symbol.asyncIterator]().next();
    await engine.close({ cancel: true });
    expect((await running.done).finishReason).toBe("cancelled");
    expect((await running.done).completionTokens).toBeLessThan(100);
    expect(await waiting.done).toMatchObject({ finishReason: "cancelled", completionTokens: 0 });
    await expect(engine.generate({ adapter: null, promptIds: [1], maxTokens: 1 })).rejects.toMatchObject({ status: 429 });
  });
});

describe("ServeEngine on an exported decoder", () => {
  test("an Optimum-style .onnx with a key/value cache serves mixed batches with the onnx backend's greedy answers", async () => {
    const file = requireFixture("llama-tiny", "model.kv.onnx");
    const engine = await ServeEngine.create({ model: file, adapters: { plain: ADAPTERS.plain }, maxBatch: 4 });
    try {
      const backend = new OnnxBackend();
      await backend.init({ logger: silentLogger });
      const adapter = await readAdapter(ADAPTERS.plain);
      const jobs = PROMPTS.slice(0, 4).map((prompt, i) => ({ prompt, adapter: i % 2 === 0 ? ("plain" as const) : null, maxTokens: 4 + i }));
      const results = await Promise.all(jobs.map((j) => collect(engine, { adapter: j.adapter, promptIds: j.prompt, maxTokens: j.maxTokens })));
      for (const [i, j] of jobs.entries()) {
        const alone = await backend.generate({ model: file, promptIds: j.prompt, maxNewTokens: j.maxTokens, ...(j.adapter ? { adapter } : {}) });
        expect(results[i]!.tokens, `request ${i}`).toEqual(alone.ids);
      }
    } finally {
      await engine.close();
    }
  });
});
