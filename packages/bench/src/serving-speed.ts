import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type * as ort from "onnxruntime-node";
import { buildCheckpointGraph, encodeModel, OnnxLoraSession } from "@lowrank/backend-onnx";
import { emptyPast, kvLayoutOf, kvStepFeeds, presentAsPast } from "@lowrank/backend-onnx/internal";
import { readAdapter, writeAdapter } from "@lowrank/core";
import { SeededRandom } from "@lowrank/core/internal";
import { randomAdapter } from "@lowrank/core/testing";
import { ServeEngine, startServeServer } from "@lowrank/serve";
import { timeInterleaved, type Spread } from "./stats.js";

/** One decoding step of a batch whose rows use different adapters, against the same batch on one adapter. */
export interface MixedStepRow {
  model: string;
  batch: number;
  adapters: number;
  rank: number;
  past_tokens: number;
  /** Milliseconds per step: every row on adapter 0, and row i on adapter i (their factors side by side, each row masked to its own). */
  single_ms: Spread;
  mixed_ms: Spread;
}

/** `lowrank serve` on loopback: clients sending requests one after another, each to a model chosen in turn among the adapters. */
export interface ServingRow {
  clients: number;
  requests: number;
  prompt_tokens: number;
  new_tokens: number;
  /** New tokens of all requests over the wall time. */
  tokens_per_second: number;
  /** Seconds from sending a request to its last token. */
  latency_p50_seconds: number;
  latency_p95_seconds: number;
  wall_seconds: number;
}

export interface ServingParams {
  modelDir: string;
  model: string;
  adapters: number;
  rank: number;
  batch: number;
  pastTokens: number;
  rounds: number;
  warmup: number;
  /** Each entry: concurrent clients and the requests each sends. */
  clients: { clients: number; requestsEach: number }[];
  promptTokens: number;
  newTokens: number;
  vocab: number;
}

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;

/** Measures issue 19's figures: the mixed-adapter decoding step, and serving throughput and latency by concurrency. */
export async function measureServing(p: ServingParams): Promise<{ mixed: MixedStepRow; serving: ServingRow[] }> {
  const work = await mkdtemp(path.join(os.tmpdir(), "lowrank-bench-serve-"));
  try {
    const names = Array.from({ length: p.adapters }, (_, i) => `a${i}`);
    const sources: Record<string, string> = {};
    for (const [i, name] of names.entries()) {
      sources[name] = path.join(work, name);
      const lora = { r: p.rank, lora_alpha: 2 * p.rank, target_modules: ["c_attn"], fan_in_fan_out: true };
      await writeAdapter(sources[name], await randomAdapter(p.modelDir, lora, 100 + i));
    }
    const mixed = await mixedStep(p, names, sources);
    const serving: ServingRow[] = [];
    const engine = await ServeEngine.create({ model: p.modelDir, servedModelName: "base", adapters: sources, maxBatch: 16 });
    const server = await startServeServer({ engine, port: 0 });
    try {
      const rng = new SeededRandom(5);
      const prompt = () => Array.from({ length: p.promptTokens }, () => Math.floor(rng.next() * p.vocab));
      let turn = 0;
      const request = async (): Promise<number> => {
        const started = performance.now();
        const response = await fetch(`${server.url}/v1/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ model: names[turn++ % names.length], prompt: prompt(), max_tokens: p.newTokens, temperature: 0 }),
        });
        if (response.status !== 200) throw new Error(`bench: serving answered ${response.status}: ${await response.text()}`);
        const body = (await response.json()) as { usage: { completion_tokens: number } };
        if (body.usage.completion_tokens !== p.newTokens) throw new Error(`bench: serving stopped after ${body.usage.completion_tokens} tokens`);
        return (performance.now() - started) / 1000;
      };
      await request();
      for (const { clients, requestsEach } of p.clients) {
        const latencies: number[] = [];
        const started = performance.now();
        await Promise.all(
          Array.from({ length: clients }, async () => {
            for (let i = 0; i < requestsEach; i++) latencies.push(await request());
          }),
        );
        const wall = (performance.now() - started) / 1000;
        latencies.sort((a, b) => a - b);
        serving.push({
          clients,
          requests: latencies.length,
          prompt_tokens: p.promptTokens,
          new_tokens: p.newTokens,
          tokens_per_second: (latencies.length * p.newTokens) / wall,
          latency_p50_seconds: quantile(latencies, 0.5),
          latency_p95_seconds: quantile(latencies, 0.95),
          wall_seconds: wall,
        });
      }
    } finally {
      await server.close();
    }
    return { mixed, serving };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Times one decoding step after `pastTokens` tokens: the batch on one adapter, then with a different adapter per row. */
async function mixedStep(p: ServingParams, names: string[], sources: Record<string, string>): Promise<MixedStepRow> {
  const adapters = Object.fromEntries(await Promise.all(names.map(async (n) => [n, await readAdapter(sources[n]!)] as const)));
  const session = await OnnxLoraSession.create(encodeModel(await buildCheckpointGraph(p.modelDir)), {
    modelDir: p.modelDir,
    label: p.model,
    adapters,
    rowMixing: true,
  });
  try {
    const layout = kvLayoutOf(session.session, p.model)!;
    const rng = new SeededRandom(9);
    const prompts = Array.from({ length: p.batch }, () => Array.from({ length: p.pastTokens }, () => Math.floor(rng.next() * p.vocab)));
    const prefill = await session.run(kvStepFeeds(layout, prompts, emptyPast(layout, p.batch), 0), { adapter: names[0]! });
    const feeds: Record<string, ort.Tensor> = kvStepFeeds(
      layout,
      prompts.map((row) => [row[0]!]),
      presentAsPast(layout, prefill),
      p.pastTokens,
    );
    const rows = Array.from({ length: p.batch }, (_, i) => names[i % names.length]!);
    const times = await timeInterleaved(
      {
        single: () =>
          session.runMixed(
            feeds,
            rows.map(() => names[0]!),
          ),
        mixed: () => session.runMixed(feeds, rows),
      },
      p.rounds,
      p.warmup,
    );
    return {
      model: p.model,
      batch: p.batch,
      adapters: new Set(rows).size,
      rank: p.rank,
      past_tokens: p.pastTokens,
      single_ms: times.single!,
      mixed_ms: times.mixed!,
    };
  } finally {
    await session.release();
  }
}
