import { readFileSync } from "node:fs";
import path from "node:path";
import { stopTokensOf } from "./stop-tokens-of.js";

/**
 * A model's stop tokens, as transformers' generate takes them: `eos_token_id` (a number or a
 * list) of generation_config.json, else of config.json, else the tokenizer's end-of-sequence token;
 * undefined when none says.
 */
export function readStopTokens(modelDir: string, tokenizerEos?: number): number[] | undefined {
  const read = (file: string): unknown => {
    try {
      return JSON.parse(readFileSync(path.join(modelDir, file), "utf8"));
    } catch {
      return undefined; // absent or unreadable: the next file says
    }
  };
  return stopTokensOf([read("generation_config.json"), read("config.json")], tokenizerEos);
}
