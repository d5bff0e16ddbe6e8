import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, test } from "vitest";
import { BackendRegistry } from "@lowrank/core";
import { backendConformanceChecks, requireFixture } from "@lowrank/core/testing";
import { createExampleBackend, register } from "./index.mjs";

const root = path.resolve(import.meta.dirname, "../..");
const cli = path.join(root, "packages/cli/dist/bin.js");
const plugin = path.join(import.meta.dirname, "index.mjs");

describe("the example backend passes core's conformance checks", () => {
  test.each(backendConformanceChecks(createExampleBackend, ["merge"]).map((c) => [c.name, c] as const))("%s", async (_, check) => {
    await check.run();
  });
});

describe("registered as a plugin, it is found through the registry", () => {
  test("by the registry API", async () => {
    const registry = new BackendRegistry();
    register(registry);
    const { backend, init } = await registry.resolveFor("merge");
    expect(backend.name).toBe("example-cpu");
    expect(init.device).toBe("cpu");
  });

  test("by the CLI: `lowrank backends` lists it and `lowrank merge --backend` uses it", () => {
    const listed = JSON.parse(execFileSync(process.execPath, [cli, "--plugin", plugin, "backends", "--json"], { encoding: "utf8" }));
    expect(listed).toContainEqual({
      name: "example-cpu",
      available: true,
      device: "cpu",
      capabilities: ["merge"],
      // onnx is registered first and is the default for merge; the plugin is chosen by name.
      default_for: [],
      note: "example plugin from examples/custom-backend",
    });
    const out = mkdtempSync(path.join(os.tmpdir(), "lowrank-example-"));
    try {
      const stdout = execFileSync(
        process.execPath,
        [
          cli,
          "--plugin",
          plugin,
          "merge",
          "--backend",
          "example-cpu",
          "--base",
          requireFixture("gpt2-tiny"),
          "--adapter",
          requireFixture("gpt2-tiny-lora"),
          "--out",
          path.join(out, "m"),
        ],
        { encoding: "utf8" },
      );
      expect(stdout).toMatch(/merged 6 module\(s\)/);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  test("a backend name that is not registered is a usage error", () => {
    const run = spawnSync(
      process.execPath,
      [cli, "--plugin", plugin, "merge", "--backend", "nope", "--base", "a", "--adapter", requireFixture("gpt2-tiny-lora"), "--out", "b"],
      { encoding: "utf8" },
    );
    expect(run.status).toBe(2);
    expect(run.stderr).toBe('lowrank: error: backend "nope" is not registered (registered: onnx, tfjs, example-cpu)\n');
  });
});
