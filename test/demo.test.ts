import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { afterAll, expect, test } from "vitest";
import { lowrank, repoRoot } from "./cli-helpers.js";

const tmp = mkdtempSync(path.join(os.tmpdir(), "lowrank-demo-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// A short run of the README's main job (the full run takes minutes): every output is written, the
// adapter is a PEFT folder, the ONNX export agrees with TensorFlow.js.
test("pnpm demo runs end to end on the embedded model (short run)", () => {
  const out = path.join(tmp, "demo-output");
  const run = spawnSync(process.execPath, [path.join(repoRoot, "scripts", "demo.mjs"), "--steps", "3", "--eval-mrs", "3", "--out", out], { encoding: "utf8", cwd: repoRoot });
  expect(run.status, run.stderr).toBe(0);
  for (const file of ["adapter/adapter_config.json", "adapter/adapter_model.safetensors", "merged/model.safetensors", "merged.onnx", "metrics.json", "report.md", "loss-curve.svg"]) {
    expect(existsSync(path.join(out, file)), file).toBe(true);
  }
  const metrics = JSON.parse(readFileSync(path.join(out, "metrics.json"), "utf8"));
  for (const when of ["before", "after"]) expect(Object.keys(metrics[when]).sort()).toEqual(["bleu", "eval_loss", "perplexity"]);
  // r=4 on c_attn in each of the 4 layers: A 4×192 and B 576×4.
  expect(metrics.trainable_params).toBe(4 * (4 * 192 + 576 * 4));
  expect(metrics.total_params).toBeGreaterThan(2_000_000);
  expect(metrics.onnx_max_abs_diff).toBeLessThan(1e-4);
  expect(readFileSync(path.join(out, "report.md"), "utf8")).toContain("![training loss](loss-curve.svg)");
  const inspect = lowrank(["inspect", path.join(out, "adapter"), "--json"]);
  expect(inspect.status, inspect.stderr).toBe(0);
  expect(JSON.parse(inspect.stdout).modules).toHaveLength(4);
}, 240_000);
