import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { readSafetensors, toFloat32 } from "@lowrank/core";
import { idRows, maxAbsDiff, requireFixture } from "@lowrank/core/testing";
import { selectEngine } from "@lowrank/backend-tfjs";
import { fineTuneAndPush } from "./fine-tune-and-push.js";
import { hubAdapterToOnnx } from "./hub-adapter-to-onnx.js";
import { serveSeveralAdapters } from "./multi-adapter-onnx.js";
import { startHubServeProcess } from "../../test/cli-helpers.js";

const root = path.resolve(import.meta.dirname, "../..");
const tmp = mkdtempSync(path.join(os.tmpdir(), "lowrank-examples-"));
const TOKEN = "hf_examples_token";
let hub: { url: string; stop: () => Promise<void> };

beforeAll(async () => {
  await selectEngine();
  hub = await startHubServeProcess(path.join(tmp, "hub"), TOKEN);
});
afterAll(async () => {
  await hub?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

test("fine-tune and push, then pull the adapter and merge it into an ONNX export", async () => {
  const pushed = await fineTuneAndPush({ root, repo: "examples/gpt2-mini-e2e", hubUrl: hub.url, token: TOKEN, steps: 4 });
  expect(pushed.commitUrl).toMatch(new RegExp(`^${hub.url}/examples/gpt2-mini-e2e/commit/[0-9a-f]{40}$`));
  expect(Number.isFinite(pushed.finalLoss)).toBe(true);
  const result = await hubAdapterToOnnx({ baseDir: path.join(root, "models/gpt2-mini"), repo: "examples/gpt2-mini-e2e", hubUrl: hub.url, token: TOKEN, cacheDir: path.join(tmp, "cache"), ids: [[10, 20, 30, 40]] });
  expect(result.merged).toHaveLength(4);
  expect(result.logits).toHaveLength(4 * 4096);
}, 180_000);

test("several adapters from one ONNX session", async () => {
  const cases = (await readSafetensors(requireFixture("cases", "llama-tiny-lora.safetensors"))).tensors;
  const ids = idRows(cases.get("input_ids")!);
  const results = await serveSeveralAdapters({
    model: requireFixture("llama-tiny", "model.onnx"),
    adapters: { tuned: requireFixture("llama-tiny-lora"), embeddings: requireFixture("llama-tiny-embed-lora") },
    ids,
  });
  expect(maxAbsDiff(results.tuned, toFloat32(cases.get("adapted_logits")!))).toBeLessThanOrEqual(1e-4);
  expect(maxAbsDiff(results.base, toFloat32(cases.get("base_logits")!))).toBeLessThanOrEqual(1e-4);
  expect(maxAbsDiff(results.embeddings, results.base)).toBeGreaterThan(1e-2);
});
