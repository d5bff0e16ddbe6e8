import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { loadTokenizer } from "./load-tokenizer.js";

const GPT2_MINI = path.resolve(import.meta.dirname, "../../../../models/gpt2-mini");
const tmp = mkdtempSync(path.join(os.tmpdir(), "lowrank-tokenizer-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A folder with gpt2-mini's tokenizer.json and the given extra files. */
function folder(name: string, files: Record<string, unknown>): string {
  const dir = path.join(tmp, name);
  mkdirSync(dir);
  copyFileSync(path.join(GPT2_MINI, "tokenizer.json"), path.join(dir, "tokenizer.json"));
  for (const [file, content] of Object.entries(files)) writeFileSync(path.join(dir, file), typeof content === "string" ? content : JSON.stringify(content));
  return dir;
}

describe("loadTokenizer: chat template and special tokens", () => {
  test("gpt2-mini has neither a chat template nor tokenizer_config.json", async () => {
    const tokenizer = await loadTokenizer(GPT2_MINI, { eos_token_id: 4095 });
    expect(tokenizer).toMatchObject({ eosTokenId: 4095, specialTokens: {}, source: GPT2_MINI });
    expect(tokenizer!.chatTemplate).toBeUndefined();
  });

  test.each([
    ["a string", { chat_template: "A" }, {}, "A"],
    [
      "the list entry named default",
      {
        chat_template: [
          { name: "tool_use", template: "T" },
          { name: "default", template: "D" },
        ],
      },
      {},
      "D",
    ],
    ["chat_template.jinja before tokenizer_config.json", { chat_template: "A" }, { "chat_template.jinja": "J" }, "J"],
    ["a list without default: none", { chat_template: [{ name: "tool_use", template: "T" }] }, {}, undefined],
  ])("chat_template: %s", async (name, config, files, expected) => {
    const tokenizer = await loadTokenizer(folder(name.replace(/\W+/g, "-"), { "tokenizer_config.json": config, ...files }));
    expect(tokenizer!.chatTemplate).toBe(expected);
  });

  test("special tokens' texts come from tokenizer_config.json (strings or AddedToken objects), then special_tokens_map.json", async () => {
    const dir = folder("special", {
      "tokenizer_config.json": {
        eos_token: { content: "<|endoftext|>", special: true },
        pad_token: null,
        additional_special_tokens: ["<a>", { content: "<b>" }],
      },
      "special_tokens_map.json": { bos_token: "<|endoftext|>", eos_token: "ignored", unk_token: { content: "<unk>" } },
    });
    const tokenizer = await loadTokenizer(dir);
    expect(tokenizer!.specialTokens).toEqual({
      bos_token: "<|endoftext|>",
      eos_token: "<|endoftext|>",
      unk_token: "<unk>",
      additional_special_tokens: ["<a>", "<b>"],
    });
    expect(tokenizer!.eosTokenId).toBe(4095);
  });
});
