import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { afterAll, expect, test } from "vitest";
import { lowrank, repoRoot } from "./cli-helpers.js";

const tmp = mkdtempSync(path.join(os.tmpdir(), "lowrank-demo-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// A shorter run of the README's main job (the full run takes minutes): LoRA must improve the model
// on held-out meaning representations (eval loss falls, BLEU rises), every output is written, the
// adapter is a PEFT folder, the ONNX export agrees with TensorFlow.js. 40 steps is about the fewest
// after which BLEU has clearly risen (fewer steps first lower it while the loss already falls).
test("pnpm demo runs end to end on the embedded model and improves it (short run)", () => {
  const out = path.join(tmp, "demo-output");
  const run = spawnSync(process.execPath, [path.join(repoRoot, "scripts", "demo.mjs"), "--steps", "40", "--eval-mrs", "6", "--out", out], {
    encoding: "utf8",
    cwd: repoRoot,
  });
  expect(run.status, run.stderr).toBe(0);
  for (const file of [
    "adapter/adapter_config.json",
    "adapter/adapter_model.safetensors",
    "merged/model.safetensors",
    "merged.onnx",
    "metrics.json",
    "report.md",
    "loss-curve.svg",
  ]) {
    expect(existsSync(path.join(out, file)), file).toBe(true);
  }
  const metrics = JSON.parse(readFileSync(path.join(out, "metrics.json"), "utf8"));
  for (const when of ["before", "after"]) expect(Object.keys(metrics[when]).sort()).toEqual(["bleu", "eval_loss", "perplexity"]);
  const { before, after } = metrics;
  // An untrained adapter changes neither the loss nor BLEU; 40 steps change both clearly.
  expect(after.eval_loss, "eval loss falls by at least 10%").toBeLessThan(0.9 * before.eval_loss);
  expect(after.perplexity).toBeLessThan(before.perplexity);
  expect(after.bleu, "BLEU rises by at least one point").toBeGreaterThan(before.bleu + 0.01);
  expect(metrics.steps).toBe(40);
  // r=4 on c_attn (n_embd → 3·n_embd) in each of the embedded base's layers: A 4×n_embd and B 3·n_embd×4.
  const base = JSON.parse(readFileSync(path.join(repoRoot, "models", "gpt2-mini", "config.json"), "utf8"));
  expect(metrics.trainable_params).toBe(base.n_layer * (4 * base.n_embd + 3 * base.n_embd * 4));
  expect(metrics.total_params).toBeGreaterThan(12_000_000);
  expect(metrics.onnx_max_abs_diff).toBeLessThan(1e-4);
  expect(readFileSync(path.join(out, "report.md"), "utf8")).toContain("![training loss](loss-curve.svg)");
  const inspect = lowrank(["inspect", path.join(out, "adapter"), "--json"]);
  expect(inspect.status, inspect.stderr).toBe(0);
  expect(JSON.parse(inspect.stdout).modules).toHaveLength(base.n_layer);
}, 480_000);
