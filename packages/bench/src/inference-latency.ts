import * as tf from "@tensorflow/tfjs";
import type { LoraAdapter } from "@lowrank/core";
import { SeededRandom } from "@lowrank/core/internal";
import { AdapterHost, loadModel, selectEngine, type TfjsModel } from "@lowrank/backend-tfjs";
import { inferenceContext } from "@lowrank/backend-tfjs/internal";
import { buildDecoderGraph, createOrtSession, decodeModel, encodeModel, mergeIntoOnnxModel, OnnxLoraSession } from "@lowrank/backend-onnx";
import { emptyPast, kvLayoutOf, kvStepFeeds } from "@lowrank/backend-onnx/internal";
import { timeInBlocks, timeInterleaved, type Spread } from "./stats.js";

export interface LatencyRow {
  model: string;
  batch: number;
  seq_len: number;
  /** ONNX Runtime's execution provider and the tfjs engine. */
  ort_provider: string;
  tfjs_engine: string;
  /** Milliseconds per forward pass (logits read back), per variant. */
  ort_base: Spread;
  ort_merged: Spread;
  ort_unmerged: Spread;
  tfjs_base: Spread;
  tfjs_merged: Spread;
  tfjs_unmerged: Spread;
}

export interface LatencyParams {
  /** A GPT-2 folder (exported to ONNX in memory for ONNX Runtime). */
  modelDir: string;
  model: string;
  adapter: LoraAdapter;
  batches: number[];
  seqLen: number;
  rounds: number;
  warmup: number;
  /** ONNX Runtime's rounds when they differ (its passes are several times cheaper than tfjs's). */
  ortRounds?: number;
}

function randomIds(batch: number, seqLen: number, vocab: number, seed: number): number[][] {
  const rng = new SeededRandom(seed);
  return Array.from({ length: batch }, () => Array.from({ length: seqLen }, () => Math.floor(rng.next() * vocab)));
}

function tfjsLogits(model: TfjsModel, ids: number[][]): void {
  tf.tidy(() => void model.forward({ inputIds: tf.tensor2d(ids, undefined, "int32") }, inferenceContext()).logits.dataSync());
}

/**
 * Forward latency of the base model, the adapter merged into the weights, and the adapter unmerged
 * (ONNX Runtime: LoRA inputs fed per run; tfjs: the LoRA branch beside the frozen weight), on both
 * runtimes. ONNX Runtime's three sessions are timed interleaved, run by run; tfjs's one model is
 * switched between the three states in blocks (see timeInBlocks).
 */
export async function measureInferenceLatency(params: LatencyParams): Promise<LatencyRow[]> {
  const engine = await selectEngine();
  const onnx = encodeModel(await buildDecoderGraph(params.modelDir));
  const merged = encodeModel(mergeIntoOnnxModel(decodeModel(onnx, "model.onnx"), params.adapter, { modelDir: params.modelDir }).model);
  const { session: ortBase, provider } = await createOrtSession(onnx);
  const ortMerged = (await createOrtSession(merged)).session;
  const ortUnmerged = await OnnxLoraSession.create(onnx, { adapters: { adapter: params.adapter } });
  // One tfjs model whose state is switched (untimed) before each timed pass: three copies of a
  // GPT-2-small would crowd wasm's 4 GB heap.
  const model = await loadModel(params.modelDir);
  const host = new AdapterHost(model);
  host.load("adapter", params.adapter);
  const state = (want: "base" | "merged" | "unmerged") => (): void => {
    if (host.isMerged && want !== "merged") host.unmerge();
    if (want === "base") host.disable();
    else host.enable();
    if (want === "merged" && !host.isMerged) host.merge();
  };
  const vocab = Number(model.config.vocab_size);
  const rows: LatencyRow[] = [];
  try {
    for (const batch of params.batches) {
      const ids = randomIds(batch, params.seqLen, vocab, batch);
      const layout = kvLayoutOf(ortBase, params.modelDir)!;
      // The whole sequence with an empty cache: the forward pass transformers runs without one.
      const feeds = kvStepFeeds(layout, ids, emptyPast(layout, batch), 0);
      const ort = await timeInterleaved(
        {
          ort_base: () => ortBase.run(feeds),
          ort_merged: () => ortMerged.run(feeds),
          ort_unmerged: () => ortUnmerged.run(feeds, { adapter: "adapter" }),
        },
        params.ortRounds ?? params.rounds,
        params.warmup,
      );
      const visits = 3;
      const tfjs = await timeInBlocks(
        {
          tfjs_base: { prepare: state("base"), run: () => tfjsLogits(model, ids) },
          tfjs_merged: { prepare: state("merged"), run: () => tfjsLogits(model, ids) },
          tfjs_unmerged: { prepare: state("unmerged"), run: () => tfjsLogits(model, ids) },
        },
        visits,
        Math.max(1, Math.round(params.rounds / visits)),
        Math.max(1, Math.round(params.warmup / visits)),
      );
      rows.push({ model: params.model, batch, seq_len: params.seqLen, ort_provider: provider, tfjs_engine: engine.engine, ...ort, ...tfjs } as LatencyRow);
    }
  } finally {
    await ortBase.release();
    await ortMerged.release();
    await ortUnmerged.release();
    model.store.dispose();
  }
  return rows;
}
