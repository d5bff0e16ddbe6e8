import { stat } from "node:fs/promises";
import path from "node:path";
import { mergeCheckpoint, type LoraAdapter } from "@lowrank/core";
import { peakRssBytes } from "./stats.js";

export interface MergeMemory {
  model: string;
  adapter: string;
  checkpoint_bytes: number;
  /** The merging process's resident-set high-water mark (a process of its own). */
  peak_rss_bytes: number;
  seconds: number;
}

/** Merges an adapter into a (large) checkpoint and reports the process's peak memory. */
export async function measureMergeMemory(params: {
  baseDir: string;
  adapter: LoraAdapter;
  outDir: string;
  model: string;
  adapterLabel: string;
}): Promise<MergeMemory> {
  const start = performance.now();
  await mergeCheckpoint({ baseDir: params.baseDir, adapter: params.adapter, outDir: params.outDir });
  const seconds = (performance.now() - start) / 1000;
  return {
    model: params.model,
    adapter: params.adapterLabel,
    checkpoint_bytes: (await stat(path.join(params.baseDir, "model.safetensors"))).size,
    peak_rss_bytes: await peakRssBytes(),
    seconds,
  };
}
