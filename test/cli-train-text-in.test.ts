import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { lowrank, repoRoot } from "./cli-helpers.js";

const tmp = mkdtempSync(path.join(os.tmpdir(), "lowrank-cli-text-in-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// gpt2-mini with a chat template that ends each message with its <|endoftext|>.
const model = path.join(tmp, "gpt2-mini-chat");
mkdirSync(model);
for (const file of ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json"]) {
  copyFileSync(path.join(repoRoot, "models/gpt2-mini", file), path.join(model, file));
}
writeFileSync(
  path.join(model, "tokenizer_config.json"),
  JSON.stringify({
    eos_token: "<|endoftext|>",
    chat_template:
      "{% for m in messages %}{{ m.role + ': ' + m.content + eos_token + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}",
  }),
);

const jsonl = (name: string, lines: readonly object[]): string => {
  const file = path.join(tmp, name);
  writeFileSync(file, lines.map((l) => JSON.stringify(l)).join("\n"));
  return file;
};
const colours = ["red", "green", "blue", "yellow", "black", "white", "orange", "purple"];
const promptCompletion = jsonl(
  "pc.jsonl",
  colours.map((c) => ({ prompt: `The name of a colour: ${c}. Say it again:`, completion: ` ${c}.` })),
);
const messages = jsonl(
  "chat.jsonl",
  colours.map((c) => ({
    messages: [
      { role: "system", content: "Repeat the colour." },
      { role: "user", content: `The colour is ${c}.` },
      { role: "assistant", content: `${c}` },
    ],
  })),
);

describe("lowrank train on prompt/completion and messages data", () => {
  test.each([
    ["prompt/completion", promptCompletion],
    ["messages", messages],
  ])("%s: tfjs and ONNX Runtime train with the same losses (the −100 labels are honoured alike)", (name, data) => {
    const losses = (backend: string): number[] => {
      const out = path.join(tmp, `${name}-${backend}`.replace("/", "-"));
      const run = lowrank([
        "train",
        "--model",
        model,
        "--data",
        data,
        "--backend",
        backend,
        "--out",
        out,
        "--rank",
        "4",
        "--target-modules",
        "c_attn",
        "--lr",
        "5e-3",
        "--batch-size",
        "4",
        "--steps",
        "3",
        "--seed",
        "3",
      ]);
      expect(run.status, run.stderr).toBe(0);
      // training_summary.json's losses, not --log: the CLI's log file is closed twice, which can crash a run (EBADF).
      return JSON.parse(readFileSync(path.join(out, "training_summary.json"), "utf8")).losses as number[];
    };
    const tfjs = losses("tfjs");
    const onnx = losses("onnx");
    expect(tfjs).toHaveLength(3);
    expect(tfjs.every(Number.isFinite)).toBe(true);
    onnx.forEach((loss, i) => expect(Math.abs(loss - tfjs[i]!)).toBeLessThanOrEqual(1e-3));
  });
});
