import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { readAdapter, readSafetensors, toFloat32, writeAdapter } from "@lowrank/core";
import { idRows, maxAbsDiff, requireFixture } from "@lowrank/core/testing";
import { e2eByteData, lowrank } from "./cli-helpers.js";

// Adapter files as PEFT writes them, and every path accepting every adapter PEFT accepts.
const tmp = mkdtempSync(path.join(os.tmpdir(), "lowrank-peft-files-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const savedTargets = (dir: string): unknown => JSON.parse(readFileSync(path.join(dir, "adapter_config.json"), "utf8")).target_modules;

describe("lowrank train saves target_modules resolved, as PEFT saves them", () => {
  const data = e2eByteData(tmp, "train.jsonl", 0, 8);
  const train = (model: string, out: string, extra: string[]) =>
    lowrank(["train", "--model", requireFixture(model), "--data", data, "--rank", "2", "--steps", "1", "--batch-size", "4", "--out", out, ...extra]);

  test.each([
    ["gpt2-tiny", ["--backend", "tfjs"], ["c_attn"]],
    ["gpt2-tiny", ["--backend", "onnx"], ["c_attn"]],
    ["gpt2-tiny", ["--backend", "tfjs", "--target-modules", "all-linear"], ["c_attn", "c_fc", "c_proj"]],
    ["llama-tiny", ["--backend", "tfjs"], ["q_proj", "v_proj"]],
    ["llama-tiny", ["--backend", "onnx", "--target-modules", "all-linear"], ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]],
  ] as const)("%s %j → %j", (model, flags, expected) => {
    const out = path.join(tmp, `${model}-${flags.join("")}`);
    const run = train(model, out, [...flags, "--json"]);
    expect(run.status, run.stderr).toBe(0);
    expect(savedTargets(out)).toEqual(expected);
    // `train --json` names the backend that ran (the design's command contract).
    expect(JSON.parse(run.stdout).backend).toBe(flags[1]);
  });
});

describe("an adapter with `target_modules: null` works on every path", () => {
  // gpt2-tiny-lora's c_attn factors under PEFT's default for gpt2 (c_attn): target_modules null.
  const make = async (): Promise<string> => {
    const dir = path.join(tmp, "null-targets");
    const source = await readAdapter(requireFixture("gpt2-tiny-lora"));
    const tensors = new Map([...source.tensors].filter(([k]) => k.includes(".c_attn.")));
    await writeAdapter(dir, { config: { ...source.config, target_modules: null }, tensors });
    return dir;
  };
  const ids = async (): Promise<string> => {
    const cases = (await readSafetensors(requireFixture("cases", "gpt2-tiny-lora.safetensors"))).tensors;
    const file = path.join(tmp, "ids.json");
    writeFileSync(file, JSON.stringify(idRows(cases.get("input_ids")!)));
    return file;
  };
  const logits = async (file: string) => toFloat32((await readSafetensors(file)).tensors.get("logits")!);

  test("predict on tfjs and on ONNX Runtime (with and without config.json beside the .onnx), onnx merge", async () => {
    const adapter = await make();
    const idsFile = await ids();
    const alone = path.join(tmp, "alone");
    mkdirSync(alone);
    copyFileSync(requireFixture("gpt2-tiny", "model.onnx"), path.join(alone, "model.onnx"));
    const outputs: Record<string, Float32Array> = {};
    for (const [name, args] of [
      ["tfjs", ["--backend", "tfjs", "--model", requireFixture("gpt2-tiny")]],
      ["onnx", ["--backend", "onnx", "--model", requireFixture("gpt2-tiny", "model.onnx")]],
      ["onnx-alone", ["--backend", "onnx", "--model", path.join(alone, "model.onnx")]],
      ["onnx-merged", ["--backend", "onnx", "--model", path.join(alone, "model.onnx"), "--merge"]],
    ] as const) {
      const out = path.join(tmp, `${name}.safetensors`);
      const run = lowrank(["predict", ...args, "--adapter", adapter, "--input-ids", idsFile, "--output", out]);
      expect(run.status, `${name}: ${run.stderr}`).toBe(0);
      outputs[name] = await logits(out);
    }
    for (const name of ["onnx", "onnx-alone", "onnx-merged"]) expect(maxAbsDiff(outputs[name]!, outputs.tfjs!), name).toBeLessThanOrEqual(1e-4);
    const base = await logits(
      await (async () => {
        const out = path.join(tmp, "base.safetensors");
        expect(
          lowrank(["predict", "--backend", "onnx", "--model", requireFixture("gpt2-tiny", "model.onnx"), "--input-ids", idsFile, "--output", out]).status,
        ).toBe(0);
        return out;
      })(),
    );
    expect(maxAbsDiff(outputs.onnx!, base)).toBeGreaterThan(1e-2);

    const merged = path.join(tmp, "merged.onnx");
    const run = lowrank(["onnx", "merge", "--model", path.join(alone, "model.onnx"), "--adapter", adapter, "--out", merged]);
    expect(run.status, run.stderr).toBe(0);
    const out = path.join(tmp, "from-merged.safetensors");
    expect(lowrank(["predict", "--backend", "onnx", "--model", merged, "--input-ids", idsFile, "--output", out]).status).toBe(0);
    expect(maxAbsDiff(await logits(out), outputs.tfjs!)).toBeLessThanOrEqual(1e-4);
  });
});
