import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { readSafetensors, toFloat32 } from "@lowrank/core";
import { requireFixture } from "@lowrank/core/testing";
import { e2eByteData, lowrank, repoRoot } from "./cli-helpers.js";

const tmp = mkdtempSync(path.join(os.tmpdir(), "lowrank-durability-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const data = e2eByteData(tmp, "train.jsonl", 0, 64);
const common = [
  "--model",
  requireFixture("gpt2-tiny"),
  "--data",
  data,
  "--rank",
  "4",
  "--alpha",
  "8",
  "--target-modules",
  "c_attn",
  "--batch-size",
  "8",
  "--seed",
  "5",
];
const losses = (file: string): Map<number, number> =>
  new Map(
    readFileSync(file, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l))
      .filter((e) => e.loss !== undefined)
      .map((e) => [e.step, e.loss]),
  );

describe("training durability", () => {
  test("a run killed with SIGKILL mid-epoch resumes from its last checkpoint to identical losses", async () => {
    const args = [...common, "--lr", "5e-3", "--steps", "12", "--save-every", "3"];
    const reference = lowrank(["train", ...args, "--out", path.join(tmp, "reference"), "--log", path.join(tmp, "reference.jsonl")]);
    expect(reference.status, reference.stderr).toBe(0);

    const out = path.join(tmp, "killed");
    const child = spawn(
      process.execPath,
      [path.join(repoRoot, "packages", "cli", "dist", "bin.js"), "train", ...args, "--out", out, "--log", path.join(tmp, "killed.jsonl")],
      { stdio: "ignore" },
    );
    const checkpoint = path.join(out, "checkpoint-6");
    const deadline = Date.now() + 60_000;
    while (!existsSync(path.join(checkpoint, "trainer_state.json")) && !existsSync(path.join(checkpoint, "adapter_config.json"))) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error("checkpoint-6 never appeared");
      await new Promise((r) => setTimeout(r, 5));
    }
    child.kill("SIGKILL");
    await new Promise((r) => child.once("exit", r));
    expect(existsSync(path.join(out, "adapter_model.safetensors"))).toBe(false);

    const resumed = lowrank(["train", ...args, "--out", out, "--resume", checkpoint, "--log", path.join(tmp, "resumed.jsonl")]);
    expect(resumed.status, resumed.stderr).toBe(0);
    const want = losses(path.join(tmp, "reference.jsonl"));
    const got = losses(path.join(tmp, "resumed.jsonl"));
    expect([...got.keys()]).toEqual([7, 8, 9, 10, 11, 12]);
    for (const [step, loss] of got) expect(loss, `step ${step}`).toBe(want.get(step));
    const final = (dir: string) => readFileSync(path.join(dir, "adapter_model.safetensors"));
    expect(Buffer.compare(final(out), final(path.join(tmp, "reference")))).toBe(0);
  }, 180_000);

  test("a non-finite loss stops training with a one-line message and keeps the last good checkpoint", async () => {
    const out = path.join(tmp, "diverged");
    const run = lowrank(["train", ...common, "--lr", "1e12", "--max-grad-norm", "0", "--steps", "20", "--save-every", "1", "--out", out]);
    expect(run.status).toBe(1);
    const lines = run.stderr.trim().split("\n");
    expect(lines.at(-1)).toMatch(
      new RegExp(
        /^lowrank: error: training diverged at step (\d+): loss (NaN|Infinity|-Infinity), gradient norm \S+ \(lower --lr or set --max-grad-norm\); /.source +
          /the last good checkpoint is .*checkpoint-(\d+) \(continue with --resume .*\); no adapter was written$/.source,
      ),
    );
    const [, stepText, , kept] = /at step (\d+): loss (\S+),.*checkpoint-(\d+) \(/.exec(lines.at(-1)!)!;
    expect(Number(kept)).toBe(Number(stepText) - 1);
    expect(existsSync(path.join(out, "adapter_model.safetensors"))).toBe(false);
    const checkpoints = readdirSync(out)
      .filter((n) => n.startsWith("checkpoint-"))
      .map((n) => Number(n.slice(11)));
    expect(Math.max(...checkpoints)).toBe(Number(kept));
    const { tensors } = await readSafetensors(path.join(out, `checkpoint-${kept}`, "adapter_model.safetensors"));
    for (const [key, t] of tensors) expect(toFloat32(t).every(Number.isFinite), key).toBe(true);
  }, 120_000);
});
