import { readFileSync } from "node:fs";
import path from "node:path";

/**
 * A model's stop tokens, as transformers' generate takes them: `eos_token_id` (a number or a
 * list) of generation_config.json, else of config.json, else the tokenizer's end-of-sequence token;
 * undefined when none says.
 */
export function readStopTokens(modelDir: string, tokenizerEos?: number): number[] | undefined {
  for (const file of ["generation_config.json", "config.json"]) {
    try {
      const eos = (JSON.parse(readFileSync(path.join(modelDir, file), "utf8")) as { eos_token_id?: unknown }).eos_token_id;
      const ids = typeof eos === "number" ? [eos] : Array.isArray(eos) ? eos.filter((x): x is number => Number.isInteger(x)) : [];
      if (ids.length > 0) return ids;
    } catch {
      // absent or unreadable: try the next file
    }
  }
  return tokenizerEos === undefined ? undefined : [tokenizerEos];
}
