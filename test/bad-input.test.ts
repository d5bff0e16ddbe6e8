import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { requireFixture } from "@lowrank/core/testing";
import { lowrank } from "./cli-helpers.js";

// Bad input is one `lowrank: error:` line, exit 2, and no output file — on every backend.
const tmp = mkdtempSync(path.join(os.tmpdir(), "lowrank-bad-input-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function expectUsageError(run: { status: number | null; stderr: string }, pattern: RegExp): void {
  expect(run.status, run.stderr).toBe(2);
  const lines = run.stderr.trim().split("\n");
  expect(lines, run.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^lowrank: error: /);
  expect(lines[0]).toMatch(pattern);
}

describe("token ids outside the vocabulary", () => {
  test.each([
    ["tfjs", requireFixture("gpt2-tiny"), 512],
    ["tfjs", requireFixture("llama-tiny"), -1],
    ["onnx", requireFixture("gpt2-tiny", "model.onnx"), 512],
    ["onnx", requireFixture("gpt2-tiny", "model.onnx"), -1],
    ["onnx", requireFixture("llama-tiny", "model.folded.onnx"), 100000],
    ["onnx", requireFixture("llama-tiny", "model.folded.onnx"), -3],
  ] as const)("%s on %s: id %d", (backend, model, id) => {
    const ids = path.join(tmp, `ids-${backend}-${id}.json`);
    writeFileSync(
      ids,
      JSON.stringify([
        [1, 2, 3],
        [4, id, 6],
      ]),
    );
    const out = path.join(tmp, `out-${backend}-${id}.safetensors`);
    const run = lowrank(["predict", "--backend", backend, "--model", model, "--input-ids", ids, "--output", out]);
    expectUsageError(run, new RegExp(`id ${id} at \\[1\\]\\[1\\] is outside the vocabulary \\(0–511\\)`));
    expect(existsSync(out)).toBe(false);
  });
});

describe("training text that is not valid UTF-8", () => {
  test.each([
    ["tfjs", "data.txt", (bad: Buffer) => Buffer.concat([Buffer.from("name : Aromi | food : Chinese\nname : Zizzi\n"), bad, Buffer.from("\nlast line\n")])],
    ["tfjs", "data.jsonl", (bad: Buffer) => Buffer.concat([Buffer.from('{"text": "fine"}\n{"text": "also fine"}\n{"text": "'), bad, Buffer.from('"}\n')])],
    [
      "onnx",
      "data.jsonl",
      (bad: Buffer) => Buffer.concat([Buffer.from('{"input_ids": [1, 2, 3]}\n{"input_ids": [4, 5, 6]}\n{"text": "'), bad, Buffer.from('"}\n')]),
    ],
  ] as const)("%s, %s: refused naming line 3, nothing written", (backend, name, make) => {
    const data = path.join(tmp, `${backend}-${name}`);
    writeFileSync(data, make(Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x21]))); // "café!" in Latin-1
    const out = path.join(tmp, `never-${backend}-${name}`);
    const run = lowrank(["train", "--backend", backend, "--model", path.join("models", "gpt2-mini"), "--data", data, "--steps", "1", "--out", out]);
    expectUsageError(run, new RegExp(`--data ${data.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} line 3: not valid UTF-8`));
    expect(existsSync(out)).toBe(false);
  });
});
