import { writeFileSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { readSafetensors, toFloat32 } from "@lowrank/core";
import { maxAbsDiff, requireFixture } from "@lowrank/core/testing";
import { lowrank } from "./cli-helpers.js";

const tmp = mkdtempSync(path.join(os.tmpdir(), "lowrank-engine-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("TensorFlow.js engine choice", () => {
  test("by default the best available engine is chosen and the reason reported", () => {
    const tfjs = JSON.parse(lowrank(["backends", "--json"]).stdout).find((b: { name: string }) => b.name === "tfjs");
    expect(tfjs).toMatchObject({ name: "tfjs", available: true, device: "cpu" });
    // tfjs-node(-gpu) cannot be installed on this kind of machine: the report says why it fell back.
    expect(tfjs.note).toMatch(/TensorFlow\.js (wasm|tfjs-node|tfjs-node-gpu) \((best available|fell back: .*tfjs-node-gpu.*)\)/);
  });

  test("LOWRANK_TFJS_ENGINE forces one; the cpu engine gives the same logits", async () => {
    const tfjs = JSON.parse(lowrank(["backends", "--json"], { LOWRANK_TFJS_ENGINE: "cpu" }).stdout).find((b: { name: string }) => b.name === "tfjs");
    expect(tfjs.note).toBe("TensorFlow.js cpu (forced)");
    const ids = path.join(tmp, "ids.json");
    writeFileSync(ids, "[[1, 2, 3, 4]]");
    const outCpu = path.join(tmp, "cpu.safetensors");
    const outDefault = path.join(tmp, "default.safetensors");
    expect(
      lowrank(["predict", "--backend", "tfjs", "--model", requireFixture("gpt2-tiny"), "--input-ids", ids, "--output", outCpu], { LOWRANK_TFJS_ENGINE: "cpu" })
        .status,
    ).toBe(0);
    expect(lowrank(["predict", "--backend", "tfjs", "--model", requireFixture("gpt2-tiny"), "--input-ids", ids, "--output", outDefault]).status).toBe(0);
    const [cpu, other] = await Promise.all([readSafetensors(outCpu), readSafetensors(outDefault)]);
    expect(maxAbsDiff(toFloat32(cpu.tensors.get("logits")!), toFloat32(other.tensors.get("logits")!))).toBeLessThan(1e-4);
  });

  test("a forced engine that cannot run is an error, not a silent fallback", () => {
    const ids = path.join(tmp, "ids2.json");
    writeFileSync(ids, "[[1, 2]]");
    const run = lowrank(
      ["predict", "--backend", "tfjs", "--model", requireFixture("gpt2-tiny"), "--input-ids", ids, "--output", path.join(tmp, "x.safetensors")],
      { LOWRANK_TFJS_ENGINE: "tfjs-node-gpu" },
    );
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(
      new RegExp(
        /^lowrank: error: backend "tfjs" cannot run here: TensorFlow\.js engine tfjs-node-gpu was requested but cannot run here: /.source +
          /@tensorflow\/tfjs-node-gpu is not installed\n$/.source,
      ),
    );
    const bogus = lowrank(
      ["predict", "--backend", "tfjs", "--model", requireFixture("gpt2-tiny"), "--input-ids", ids, "--output", path.join(tmp, "y.safetensors")],
      { LOWRANK_TFJS_ENGINE: "quantum" },
    );
    expect(bogus.status).not.toBe(0);
    expect(bogus.stderr).toMatch(/LOWRANK_TFJS_ENGINE \/ --engine is "quantum"; use one of tfjs-node-gpu, tfjs-node, wasm, cpu/);
  });
});
