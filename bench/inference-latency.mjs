#!/usr/bin/env node
// Inference latency with and without an adapter, on ONNX Runtime and TensorFlow.js, same models,
// same inputs, one run: base, merged adapter (offline), unmerged adapter (ORT: runtime slots fed per
// run; tfjs: the LoRA branch beside the frozen weights), at batch 1 and batch 8.
//
//   node bench/inference-latency.mjs [--quick] [--json out.json]
//
// Models: the PEFT fixtures gpt2-tiny and llama-tiny (../shared/fixtures), which exist as Hugging
// Face folders and as ONNX exports. Each figure is the median of the repeats after warm-up.
import { readFile, writeFile, mkdir } from "node:fs/promises";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { readAdapter, SeededRandom } from "@lowrank/core";
import { fixturesDir } from "@lowrank/core/testing";
import { selectEngine, loadModel, attachAdapter, setMerged, inferenceContext } from "@lowrank/backend-tfjs";
import { OnnxLoraSession, createOrtSession, idsTensor, decodeModel, encodeModel, mergeIntoOnnxModel } from "@lowrank/backend-onnx";

const args = process.argv.slice(2);
const quick = args.includes("--quick");
const jsonOut = args.includes("--json") ? args[args.indexOf("--json") + 1] : undefined;
const repeats = quick ? 15 : 60;
const seq = 32;

function stats(times) {
  const s = [...times].sort((a, b) => a - b);
  return { median_ms: s[Math.floor(s.length / 2)], min_ms: s[0], max_ms: s.at(-1) };
}

/**
 * Times several variants interleaved (one run of each per round), so drift and background load hit
 * them alike; warm-up rounds first.
 */
async function timeInterleaved(variants) {
  const names = Object.keys(variants);
  const times = Object.fromEntries(names.map((n) => [n, []]));
  for (let round = 0; round < repeats + 5; round++) {
    for (const name of names) {
      const t = performance.now();
      await variants[name]();
      if (round >= 5) times[name].push(performance.now() - t);
    }
  }
  return Object.fromEntries(names.map((n) => [n, stats(times[n])]));
}

const engine = await selectEngine();
const fixtures = fixturesDir();
const results = [];
for (const name of ["gpt2-tiny", "llama-tiny"]) {
  const adapter = await readAdapter(path.join(fixtures, `${name}-lora`));
  const onnxFile = path.join(fixtures, name, "model.onnx");
  const bytes = await readFile(onnxFile);
  const mergedBytes = encodeModel(mergeIntoOnnxModel(decodeModel(bytes, onnxFile), adapter, { modelDir: path.dirname(onnxFile) }).model);
  const base = (await createOrtSession(onnxFile)).session;
  const merged = (await createOrtSession(mergedBytes)).session;
  const runtime = await OnnxLoraSession.create(onnxFile, { adapters: { a: adapter } });
  const model = await loadModel(path.join(fixtures, name));
  attachAdapter(model, adapter);
  const tfjsRun = (ids) => tf.tidy(() => { model.forward({ inputIds: tf.tensor2d(ids, undefined, "int32") }, inferenceContext()).logits.dataSync(); });
  for (const batch of [1, 8]) {
    const rng = new SeededRandom(batch);
    const ids = Array.from({ length: batch }, () => Array.from({ length: seq }, () => Math.floor(rng.next() * 512)));
    const feeds = { input_ids: idsTensor(ids) };
    // tfjs variants switch the model's state, so they are timed in their own interleaved group.
    const ort = await timeInterleaved({
      ort_base: () => base.run(feeds),
      ort_merged: () => merged.run(feeds),
      ort_unmerged: () => runtime.run(feeds, { adapter: "a" }),
    });
    const branches = new Map([...model.linears].map(([k, l]) => [k, l.lora]));
    const tfjsState = (state) => {
      setMerged(model, false);
      for (const [k, l] of model.linears) l.lora = state === "base" ? undefined : branches.get(k);
      if (state === "merged") setMerged(model, true);
    };
    const tfjsTimes = {};
    for (const state of ["base", "merged", "unmerged"]) {
      tfjsState(state);
      Object.assign(tfjsTimes, await timeInterleaved({ [`tfjs_${state}`]: () => tfjsRun(ids) }));
    }
    tfjsState("unmerged");
    const row = { model: name, batch, seq, ...ort, ...tfjsTimes };
    results.push(row);
  }
  await base.release();
  await merged.release();
  await runtime.release();
  model.store.dispose();
}

const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const ratio = (a, b) => mean(results.map((r) => r[a].median_ms / r[b].median_ms));
const summary = {
  engine: engine.engine, repeats, results,
  ratios: {
    merged_over_base_latency: ratio("ort_merged", "ort_base"),
    unmerged_over_base_latency: ratio("ort_unmerged", "ort_base"),
    tfjs_merged_over_base_latency: ratio("tfjs_merged", "tfjs_base"),
    tfjs_unmerged_over_base_latency: ratio("tfjs_unmerged", "tfjs_base"),
    tfjs_over_ort_base_latency: ratio("tfjs_base", "ort_base"),
  },
};
const f = (s) => `${s.median_ms.toFixed(2)} (${s.min_ms.toFixed(2)}–${s.max_ms.toFixed(2)})`;
console.log(`inference latency in ms, median of ${repeats} after warm-up, seq ${seq}; tfjs on ${engine.engine}, ORT on CPU`);
console.log("model        batch  ORT base          ORT merged        ORT unmerged      tfjs base         tfjs merged       tfjs unmerged");
for (const r of results) console.log(`${r.model.padEnd(12)} ${String(r.batch).padEnd(6)} ${[r.ort_base, r.ort_merged, r.ort_unmerged, r.tfjs_base, r.tfjs_merged, r.tfjs_unmerged].map((s) => f(s).padEnd(17)).join(" ")}`);
console.log(`ratios: ORT merged/base ${summary.ratios.merged_over_base_latency.toFixed(3)}, ORT unmerged/base ${summary.ratios.unmerged_over_base_latency.toFixed(3)}, tfjs merged/base ${summary.ratios.tfjs_merged_over_base_latency.toFixed(3)}, tfjs unmerged/base ${summary.ratios.tfjs_unmerged_over_base_latency.toFixed(3)}, tfjs/ORT ${summary.ratios.tfjs_over_ort_base_latency.toFixed(2)}`);
if (jsonOut) {
  await mkdir(path.dirname(path.resolve(jsonOut)), { recursive: true });
  await writeFile(jsonOut, `${JSON.stringify(summary, null, 2)}\n`);
  console.log(`wrote ${jsonOut}`);
}
