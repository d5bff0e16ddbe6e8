import { cpSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { writeAdapter } from "@lowrank/core";
import { SeededRandom } from "@lowrank/core/internal";
import { randomAdapter } from "@lowrank/core/testing";
import { ServeEngine } from "./serve-engine.js";
import { startServeServer, type ServeServer } from "./serve-server.js";

const repoRoot = path.resolve(import.meta.dirname, "..", "..", "..");
const tmp = mkdtempSync(path.join(os.tmpdir(), "lowrank-serve-load-"));
const ADAPTERS = ["a", "b", "c", "d"];
const PROMPTS = [
  "name : The Eagle | food : French ||",
  "name : Zizzi | eatType : pub | area : riverside ||",
  "name : Aromi | customer rating : 5 out of 5 ||",
  "name : The Phoenix | priceRange : cheap | near : Café Sicilia ||",
];
let server: ServeServer;

beforeAll(async () => {
  const model = path.join(tmp, "gpt2-mini");
  cpSync(path.join(repoRoot, "models", "gpt2-mini"), model, { recursive: true });
  const sources: Record<string, string> = {};
  for (const [i, name] of ADAPTERS.entries()) {
    sources[name] = path.join(tmp, name);
    await writeAdapter(
      sources[name],
      await randomAdapter(model, { r: 2 + 2 * i, lora_alpha: 16, target_modules: ["c_attn", "c_fc"], fan_in_fan_out: true }, 10 + i, 0.2),
    );
  }
  server = await startServeServer({ engine: await ServeEngine.create({ model, servedModelName: "base", adapters: sources, maxBatch: 8 }), port: 0 });
}, 120_000);

afterAll(async () => {
  await server?.close();
  rmSync(tmp, { recursive: true, force: true });
});

const complete = async (model: string, prompt: string): Promise<string> => {
  const response = await fetch(`${server.url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model, prompt, max_tokens: 10, temperature: 0 }),
  });
  expect(response.status).toBe(200);
  return ((await response.json()) as { choices: { text: string }[] }).choices[0]!.text;
};

/** `count` requests over the (model, prompt) pairs in a seeded order, `concurrency` at a time; each answer checked against `solo`. */
async function load(count: number, concurrency: number, solo: Map<string, string>, seed: number): Promise<void> {
  const rng = new SeededRandom(seed);
  const keys = [...solo.keys()];
  const jobs = Array.from({ length: count }, () => keys[Math.floor(rng.next() * keys.length)]!);
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const key = jobs[next++]!;
      const [model, p] = key.split("\u0000") as [string, string];
      expect(await complete(model, PROMPTS[Number(p)]!), key).toBe(solo.get(key));
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

test("load on loopback: 160 mixed-adapter requests, 16 at a time, each answer its solo answer; memory stays flat", async () => {
  // Each (model, prompt) answered alone, one request at a time.
  const solo = new Map<string, string>();
  for (const model of ["base", ...ADAPTERS]) for (const p of [...PROMPTS.keys()]) solo.set(`${model}\u0000${p}`, await complete(model, PROMPTS[p]!));
  expect(new Set([...PROMPTS.keys()].map((p) => ADAPTERS.map((a) => solo.get(`${a}\u0000${p}`)).join("|"))).size).toBe(PROMPTS.length);
  expect(new Set(ADAPTERS.map((a) => solo.get(`${a}\u00000`))).size).toBeGreaterThan(1);
  await load(40, 16, solo, 1);
  const before = process.memoryUsage().rss;
  const started = performance.now();
  await load(160, 16, solo, 2);
  const grown = process.memoryUsage().rss - before;
  expect(grown, `RSS grew by ${(grown / 1e6).toFixed(1)} MB`).toBeLessThan(64e6);
  expect(performance.now() - started).toBeLessThan(120_000);
}, 240_000);
