import { mkdtempSync, rmSync, writeFileSync, existsSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { requireFixture } from "@lowrank/core/testing";
import { lowrank } from "./cli-helpers.js";

const tmp = mkdtempSync(path.join(os.tmpdir(), "lowrank-cli-polish-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("the lowrank command as a newcomer meets it", () => {
  test.each([
    [["merg"], "unknown command 'merg' (Did you mean merge?)"],
    [["inspekt", "x"], "unknown command 'inspekt' (Did you mean inspect?)"],
    [["train", "--modle", "x"], "unknown option '--modle' (Did you mean --model?)"],
    [["predict", "--model", "x", "--input-ids", "y", "--ouput", "z"], "unknown option '--ouput' (Did you mean --out?)"],
  ])("a typo gets the closest name: %j", (args, message) => {
    const run = lowrank(args);
    expect(run.status).toBe(2);
    expect(run.stderr).toBe(`lowrank: error: ${message}\n`);
  });

  test("each command's help marks required options and lists the global ones", () => {
    for (const command of [["train"], ["predict"], ["merge"], ["pull"], ["push"], ["onnx", "merge"], ["import", "loralib"]]) {
      const help = lowrank([...command, "--help"]).stdout;
      expect(help, command.join(" ")).toMatch(/Global Options:[\s\S]*--hub-url <url>[\s\S]*--token <token>/);
      if (command[0] !== "pull") expect(help, command.join(" ")).toMatch(/\(required\)/);
    }
    const predict = lowrank(["predict", "--help"]).stdout;
    expect(predict).toMatch(/--out <out\.safetensors>[\s\S]*\(required\)/);
    expect(predict).not.toMatch(/--output/);
    expect(lowrank(["merge", "--help"]).stdout).not.toMatch(/--base/);
  });

  test("--model and --out everywhere; the old --base and --output still work, but not both at once", () => {
    const ids = path.join(tmp, "ids.json");
    writeFileSync(ids, "[[1, 2, 3]]");
    for (const [flag, name] of [
      ["--out", "new"],
      ["--output", "old"],
    ] as const) {
      const out = path.join(tmp, `${name}.safetensors`);
      const run = lowrank(["predict", "--backend", "onnx", "--model", requireFixture("gpt2-tiny", "model.onnx"), "--input-ids", ids, flag, out]);
      expect(run.status, run.stderr).toBe(0);
      expect(existsSync(out)).toBe(true);
    }
    for (const [flag, name] of [
      ["--model", "new"],
      ["--base", "old"],
    ] as const) {
      const run = lowrank([
        "merge",
        flag,
        requireFixture("gpt2-tiny"),
        "--adapter",
        requireFixture("gpt2-tiny-lora"),
        "--out",
        path.join(tmp, `merged-${name}`),
      ]);
      expect(run.status, run.stderr).toBe(0);
      expect(lowrank(["inspect", requireFixture("gpt2-tiny-lora"), flag, requireFixture("gpt2-tiny"), "--json"]).status).toBe(0);
    }
    const both = lowrank([
      "merge",
      "--model",
      requireFixture("gpt2-tiny"),
      "--base",
      requireFixture("llama-tiny"),
      "--adapter",
      requireFixture("gpt2-tiny-lora"),
      "--out",
      path.join(tmp, "both"),
    ]);
    expect(both.status).toBe(2);
    expect(both.stderr).toBe("lowrank: error: --base is another name for --model; give one of them\n");
    const missing = lowrank(["predict", "--model", "x", "--input-ids", ids]);
    expect(missing.stderr).toBe("lowrank: error: required option '--out <out.safetensors>' not specified\n");
  });
});
