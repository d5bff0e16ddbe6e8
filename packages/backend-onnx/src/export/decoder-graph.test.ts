import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type * as ort from "onnxruntime-node";
import { describe, expect, test } from "vitest";
import { Checkpoint, readAdapter, readSafetensors, toFloat32, writeSafetensors } from "@lowrank/core";
import { fromFloat32 } from "@lowrank/core/internal";
import { idRows, maxAbsDiff, requireFixture } from "@lowrank/core/testing";
import { encodeModel } from "../onnx/onnx-codec.js";
import { emptyPast, kvLayoutOf, kvStepFeeds, presentAsPast } from "../session/kv-cache.js";
import { OnnxLoraSession } from "../session/onnx-lora-session.js";
import { buildDecoderGraph } from "./decoder-graph.js";

const PAIRS = [
  { base: "gpt2-tiny", adapter: "gpt2-tiny-lora" },
  { base: "gpt2-tiny", adapter: "gpt2-tiny-dora" },
  { base: "llama-tiny", adapter: "llama-tiny-lora" },
  { base: "llama-tiny", adapter: "llama-tiny-embed-lora" },
  { base: "mistral-sw-tiny", adapter: "mistral-sw-tiny-lora" },
  { base: "phi3-tiny", adapter: "phi3-tiny-lora" },
  { base: "gemma-tiny", adapter: "gemma-tiny-lora" },
  { base: "gemma2-tiny", adapter: "gemma2-tiny-lora" },
];

/** Rows [from, to) of logits [batch, seq, vocab] as [batch, to − from, vocab]. */
function positions(logits: Float32Array, batch: number, seq: number, from: number, to: number): Float32Array {
  const vocab = logits.length / (batch * seq);
  const out = new Float32Array(batch * (to - from) * vocab);
  for (let b = 0; b < batch; b++) out.set(logits.subarray((b * seq + from) * vocab, (b * seq + to) * vocab), b * (to - from) * vocab);
  return out;
}

describe.each(PAIRS)("the ONNX graph built from $base's checkpoint, with $adapter", ({ base, adapter }) => {
  test("base, runtime-adapted and merged logits match PEFT within 1e-4; the cache gives the same logits token by token", async () => {
    const cases = (await readSafetensors(requireFixture("cases", `${adapter}.safetensors`))).tensors;
    const ids = idRows(cases.get("input_ids")!);
    const dir = requireFixture(base);
    const session = await OnnxLoraSession.create(encodeModel(await buildDecoderGraph(dir)), {
      label: dir,
      modelDir: dir,
      adapters: { a: await readAdapter(requireFixture(adapter)) },
    });
    try {
      const layout = kvLayoutOf(session.session, dir)!;
      expect(layout).toMatchObject({ attentionMask: true, positionIds: true });
      const whole = async (name: string | null) =>
        (await session.run(kvStepFeeds(layout, ids, emptyPast(layout, ids.length), 0), { adapter: name })).logits!.data as Float32Array;
      const expectClose = (got: Float32Array, key: string) => expect(maxAbsDiff(got, toFloat32(cases.get(key)!)), key).toBeLessThanOrEqual(1e-4);
      expectClose(await whole(null), "base_logits");
      const adapted = await whole("a");
      expectClose(adapted, "adapted_logits");
      // The prompt's first 5 tokens, then 3 at once, then the rest one at a time from the cache.
      const seq = ids[0]!.length;
      let past = emptyPast(layout, ids.length);
      let done = 0;
      for (const width of [5, 3, ...Array.from({ length: seq - 8 }, () => 1)]) {
        const step = ids.map((row) => row.slice(done, done + width));
        const out = await session.run(kvStepFeeds(layout, step, past, done), { adapter: "a" });
        const want = positions(adapted, ids.length, seq, done, done + width);
        expect(maxAbsDiff(out.logits!.data as Float32Array, want), `positions ${done}…${done + width - 1}`).toBeLessThanOrEqual(1e-4);
        past = presentAsPast(layout, out);
        done += width;
      }
      expect((past["past_key_values.0.key"] as ort.Tensor).dims[2]).toBe(seq);
      await session.merge("a");
      expectClose(await whole("a"), "merged_logits");
      expectClose(await whole(null), "base_logits");
    } finally {
      await session.release();
    }
  });
});

test("a model type without a graph builder is one clear line naming the folder", async () => {
  await expect(buildDecoderGraph(requireFixture("roberta-tiny"))).rejects.toThrow(
    /roberta-tiny: model_type "roberta" has no ONNX graph builder \(supported: gpt2, /,
  );
});

test("a bfloat16 checkpoint in two shards builds the same graph as its float32 values (weights widened exactly)", async () => {
  const source = requireFixture("gemma-tiny");
  const dir = mkdtempSync(path.join(os.tmpdir(), "lowrank-bf16-"));
  const widened = mkdtempSync(path.join(os.tmpdir(), "lowrank-bf16-f32-"));
  try {
    const checkpoint = await Checkpoint.open(source);
    const names = [...checkpoint.tensorInfo().keys()];
    const shards = [new Map(), new Map()] as Map<string, { dtype: "BF16" | "F32"; shape: number[]; data: Uint8Array }>[];
    const exact = new Map<string, { dtype: "F32"; shape: number[]; data: Uint8Array }>();
    const weightMap: Record<string, string> = {};
    for (const [i, name] of names.entries()) {
      const shape = checkpoint.tensorInfo().get(name)!.shape;
      const bf16 = fromFloat32(await checkpoint.readFloat32(name), "BF16", name);
      shards[i % 2]!.set(name, { dtype: "BF16", shape, data: bf16 });
      // The float32 values the bfloat16 ones stand for: the high half of each float32.
      const f32 = new Uint8Array((bf16.length / 2) * 4);
      for (let j = 0; j < bf16.length / 2; j++) {
        f32[j * 4 + 2] = bf16[j * 2]!;
        f32[j * 4 + 3] = bf16[j * 2 + 1]!;
      }
      exact.set(name, { dtype: "F32", shape, data: f32 });
      weightMap[name] = `model-0000${(i % 2) + 1}-of-00002.safetensors`;
    }
    await checkpoint.close();
    for (const [i, shard] of shards.entries()) await writeSafetensors(path.join(dir, `model-0000${i + 1}-of-00002.safetensors`), shard, { format: "pt" });
    writeFileSync(path.join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    await writeSafetensors(path.join(widened, "model.safetensors"), exact, { format: "pt" });
    for (const d of [dir, widened]) copyFileSync(path.join(source, "config.json"), path.join(d, "config.json"));
    const ids = [[3, 9, 27, 81, 243 % 200, 1]];
    const logits = async (d: string) => {
      const session = await OnnxLoraSession.create(encodeModel(await buildDecoderGraph(d)), { label: d, modelDir: d });
      try {
        const layout = kvLayoutOf(session.session, d)!;
        return (await session.run(kvStepFeeds(layout, ids, emptyPast(layout, 1), 0))).logits!.data as Float32Array;
      } finally {
        await session.release();
      }
    };
    expect(maxAbsDiff(await logits(dir), await logits(widened))).toBe(0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(widened, { recursive: true, force: true });
  }
});
