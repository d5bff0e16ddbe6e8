#!/usr/bin/env node
// Makes the embedded model's tokenizer: GPT-2's own byte-level BPE (data/gpt2-tokenizer, MIT) with only
// its first 3,839 merges, so the vocabulary is 4,096 tokens (256 bytes + 3,839 merges + <|endoftext|>).
// Ids below 4,095 are GPT-2's ids; <|endoftext|> moves from 50256 to 4095. A small vocabulary keeps the
// embedded model small and its training fast on two cores.
//
//   node scripts/make-tokenizer.mjs [out/tokenizer.json]
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const MERGES = 3839;
const source = JSON.parse(readFileSync(path.join(root, "data", "gpt2-tokenizer", "tokenizer.json"), "utf8"));
const vocab = source.model.vocab;
const merges = source.model.merges.slice(0, MERGES);
const kept = {};
for (const [token, id] of Object.entries(vocab)) if (id < 256 + MERGES) kept[token] = id;
merges.forEach((merge, i) => {
  const [a, b] = merge.split(" ");
  if (kept[a + b] !== 256 + i) throw new Error(`merge ${i} (${merge}) does not produce id ${256 + i}`);
});
const eos = 256 + MERGES;
kept["<|endoftext|>"] = eos;
const tokenizer = {
  ...source,
  added_tokens: [{ ...source.added_tokens[0], id: eos }],
  model: { ...source.model, vocab: kept, merges },
};
const out = process.argv[2] ?? path.join(root, "models", "gpt2-mini", "tokenizer.json");
writeFileSync(out, JSON.stringify(tokenizer));
console.log(`wrote ${out}: ${Object.keys(kept).length} tokens, ${merges.length} merges, <|endoftext|> = ${eos}`);
