import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, readSafetensors, toFloat32, type Tensor } from "@lowrank/core";
import { idRows, maxAbsDiff, requireFixture } from "@lowrank/core/testing";
import { selectEngine } from "@lowrank/backend-tfjs";
import { pullRepo, pushAdapter, resolveHubConfig } from "@lowrank/hub";
import { fineTuneAndPush } from "./fine-tune-and-push.js";
import { hubAdapterToOnnx } from "./hub-adapter-to-onnx.js";
import { serveSeveralAdapters } from "./multi-adapter-onnx.js";
import { startHubServeProcess } from "../../test/cli-helpers.js";

// Each example runs as a user would run it; what it computes from the PEFT fixtures is compared with
// the logits PEFT computed for the same inputs (fixtures' cases files), within 1e-4.
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

const cases = async (name: string): Promise<Map<string, Tensor>> => (await readSafetensors(requireFixture("cases", `${name}.safetensors`))).tensors;

test("fine-tune and push: the Hub holds the adapter that was trained", async () => {
  const pushed = await fineTuneAndPush({ root, repo: "examples/gpt2-mini-e2e", hubUrl: hub.url, token: TOKEN, steps: 4 });
  expect(pushed.commitUrl).toMatch(new RegExp(`^${hub.url}/examples/gpt2-mini-e2e/commit/[0-9a-f]{40}$`));
  expect(Number.isFinite(pushed.finalLoss)).toBe(true);
  const config = resolveHubConfig({ hubUrl: hub.url, token: TOKEN, cacheDir: path.join(tmp, "cache") });
  const { snapshotDir } = await pullRepo({ repo: "examples/gpt2-mini-e2e", config });
  for (const file of [ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE]) {
    expect(readFileSync(path.join(snapshotDir, file)).equals(readFileSync(path.join(pushed.adapterDir, file))), file).toBe(true);
  }
}, 180_000);

test("a PEFT adapter pulled from the Hub and merged into an ONNX export gives PEFT's merged logits", async () => {
  const config = resolveHubConfig({ hubUrl: hub.url, token: TOKEN });
  await pushAdapter({ dir: requireFixture("gpt2-tiny-lora"), repo: "examples/gpt2-tiny-lora", config });
  const expected = await cases("gpt2-tiny-lora");
  const result = await hubAdapterToOnnx({
    baseDir: requireFixture("gpt2-tiny"),
    repo: "examples/gpt2-tiny-lora",
    hubUrl: hub.url,
    token: TOKEN,
    cacheDir: path.join(tmp, "cache"),
    out: path.join(tmp, "merged.onnx"),
    ids: idRows(expected.get("input_ids")!),
  });
  expect(result.merged).toHaveLength(6);
  expect(maxAbsDiff(result.logits, toFloat32(expected.get("merged_logits")!))).toBeLessThanOrEqual(1e-4);
}, 120_000);

test("several adapters from one ONNX session give PEFT's logits for each adapter and for the base", async () => {
  const adapters = { tuned: requireFixture("llama-tiny-lora"), embeddings: requireFixture("llama-tiny-embed-lora") };
  // Each cases file has its own inputs: one run on each, checking the adapter it belongs to.
  for (const [name, fixture] of [
    ["tuned", "llama-tiny-lora"],
    ["embeddings", "llama-tiny-embed-lora"],
  ] as const) {
    const expected = await cases(fixture);
    const results = await serveSeveralAdapters({ model: requireFixture("llama-tiny", "model.onnx"), adapters, ids: idRows(expected.get("input_ids")!) });
    expect(maxAbsDiff(results[name]!, toFloat32(expected.get("adapted_logits")!)), `${name} on ${fixture}'s inputs`).toBeLessThanOrEqual(1e-4);
    expect(maxAbsDiff(results.base!, toFloat32(expected.get("base_logits")!)), `base on ${fixture}'s inputs`).toBeLessThanOrEqual(1e-4);
  }
});
