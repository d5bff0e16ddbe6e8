import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { readSafetensors, toFloat32 } from "@lowrank/core";
import { requireFixture } from "@lowrank/core/testing";
import { lowrank, repoRoot } from "./cli-helpers.js";

const tmp = mkdtempSync(path.join(os.tmpdir(), "lowrank-device-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("execution providers: --device and lowrank doctor", () => {
  test("doctor reports ONNX Runtime's providers, TensorFlow.js's engine and the CUDA install command", () => {
    const run = lowrank(["doctor", "--json"]);
    expect(run.status, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout);
    expect(report.onnxruntime.version).toBe("1.30.0");
    expect(report.onnxruntime.providers.map((p: { provider: string }) => p.provider)).toEqual(["cuda", "cpu"]);
    expect(report.onnxruntime.providers[1]).toMatchObject({ provider: "cpu", available: true });
    expect(report.onnxruntime.cudaInstall).toBe("node scripts/install-ort-cuda.mjs");
    expect(existsSync(path.join(repoRoot, "scripts", "install-ort-cuda.mjs"))).toBe(true);
    expect(typeof report.tfjs.engine).toBe("string");
    expect(run.stderr).not.toMatch(/onnxruntime_src|\[E:onnxruntime/);
    expect(lowrank(["doctor"]).stdout).toMatch(/^ONNX Runtime 1\.30\.0:\n {2}cuda {2}(available|unavailable \(.*\))\n {2}cpu {3}available\n/m);
  });

  test("--device cuda runs on CUDA when present, else falls back to the CPU with one warning and the same logits", async () => {
    const ids = path.join(tmp, "ids.json");
    writeFileSync(ids, "[[5, 9, 200, 31]]");
    const outs: Float32Array[] = [];
    const doctor = JSON.parse(lowrank(["doctor", "--json"]).stdout);
    const cuda = doctor.onnxruntime.providers[0].available as boolean;
    for (const device of ["cpu", "cuda"]) {
      const out = path.join(tmp, `${device}.safetensors`);
      const run = lowrank([
        "--device",
        device,
        "predict",
        "--backend",
        "onnx",
        "--model",
        requireFixture("gpt2-tiny", "model.onnx"),
        "--input-ids",
        ids,
        "--out",
        out,
      ]);
      expect(run.status, run.stderr).toBe(0);
      if (device === "cuda" && !cuda) expect(run.stderr).toMatch(/^lowrank: warning: ONNX Runtime: CUDA unavailable \([^\n]+\); using the CPU\n$/);
      else expect(run.stderr).toBe("");
      outs.push(toFloat32((await readSafetensors(out)).tensors.get("logits")!));
    }
    expect(outs[1]).toEqual(outs[0]);
    expect(readFileSync(path.join(tmp, "cpu.safetensors")).length).toBeGreaterThan(0);
  });

  test("an unknown device is a usage error", () => {
    const run = lowrank(["--device", "tpu", "doctor"]);
    expect(run.status).toBe(2);
    expect(run.stderr).toBe('lowrank: error: --device must be one of cpu, cuda, got "tpu"\n');
  });
});
