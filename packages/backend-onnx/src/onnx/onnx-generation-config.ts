import { readFileSync } from "node:fs";
import path from "node:path";

/**
 * The stop tokens of the model an ONNX file was exported from: `eos_token_id` (a number or a list)
 * of generation_config.json beside it, else of config.json; undefined when neither says.
 */
export function onnxStopTokens(modelDir: string): number[] | undefined {
  for (const file of ["generation_config.json", "config.json"]) {
    try {
      const eos = (JSON.parse(readFileSync(path.join(modelDir, file), "utf8")) as { eos_token_id?: unknown }).eos_token_id;
      const ids = typeof eos === "number" ? [eos] : Array.isArray(eos) ? eos.filter((x): x is number => Number.isInteger(x)) : [];
      if (ids.length > 0) return ids;
    } catch {
      // absent or unreadable: try the next file
    }
  }
  return undefined;
}
