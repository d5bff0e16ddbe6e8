import { describe, expect, test } from "vitest";
import { requireFixture } from "@lowrank/core/testing";
import { lowrank } from "./cli-helpers.js";

// `lowrank generate --backend onnx` on a decoder exported with a key/value cache (Optimum's layout), or without one.
const ids = (args: string[]): { ids: number[]; backend: string } => {
  const run = lowrank(["generate", ...args, "--prompt-ids", "5,17,42,99,3", "--max-new-tokens", "12", "--json"]);
  expect(run.status, run.stderr).toBe(0);
  return JSON.parse(run.stdout);
};

describe("lowrank generate --backend onnx", () => {
  test.each([
    ["the base", []],
    ["an adapter at run time", ["--adapter", requireFixture("llama-tiny-lora")]],
    ["an adapter merged", ["--adapter", requireFixture("llama-tiny-lora"), "--merge"]],
    ["sampling with a seed", ["--adapter", requireFixture("llama-tiny-lora"), "--temperature", "0.8", "--top-p", "0.9", "--seed", "4"]],
    // Its saved embed_tokens copy is named model.embed_tokens.weight; the export's is m.model.embed_tokens.weight (a wrapper module).
    ["LoRA on embed_tokens at run time", ["--adapter", requireFixture("llama-tiny-embed-lora")]],
    ["LoRA on embed_tokens merged", ["--adapter", requireFixture("llama-tiny-embed-lora"), "--merge"]],
  ])("%s: the same tokens as tfjs on the checkpoint; --json names the backend", (_, flags) => {
    const onnx = ids(["--backend", "onnx", "--model", requireFixture("llama-tiny", "model.kv.onnx"), ...flags]);
    const tfjs = ids(["--backend", "tfjs", "--model", requireFixture("llama-tiny"), ...flags]);
    expect(onnx.backend).toBe("onnx");
    expect(tfjs.backend).toBe("tfjs");
    expect(onnx.ids.length).toBeGreaterThan(0);
    expect(onnx.ids).toEqual(tfjs.ids);
  });

  test.each([
    ["gpt2-tiny", "gpt2-tiny-lora"],
    ["llama-tiny", "llama-tiny-lora"],
  ])("%s's model.onnx, exported without a cache (the whole sequence per token): tfjs's tokens, base and adapter", (fixture, adapter) => {
    for (const flags of [[], ["--adapter", requireFixture(adapter)]]) {
      const onnx = ids(["--backend", "onnx", "--model", requireFixture(fixture, "model.onnx"), ...flags]);
      expect(onnx.ids.length).toBeGreaterThan(0);
      expect(onnx.ids).toEqual(ids(["--backend", "tfjs", "--model", requireFixture(fixture), ...flags]).ids);
    }
  });

  test("what it cannot do is one usage line", () => {
    const text = lowrank(["generate", "--backend", "onnx", "--model", requireFixture("llama-tiny", "model.kv.onnx"), "--prompt", "hello"]);
    expect(text.status).toBe(2);
    expect(text.stderr).toMatch(/^lowrank: error: .*llama-tiny has no tokenizer\.json; give the prompt as token ids\n$/);
    const outside = lowrank(["generate", "--backend", "onnx", "--model", requireFixture("llama-tiny", "model.kv.onnx"), "--prompt-ids", "1,600"]);
    expect(outside.status).toBe(2);
    expect(outside.stderr).toBe("lowrank: error: prompt id 600 at [0][1] is outside the vocabulary (0–511)\n");
  });
});
