import { readFile } from "node:fs/promises";
import { LowrankError } from "../errors/lowrank-error.js";
import type { TrainingExample } from "./batches.js";

/** What reading text data needs of a tokenizer. */
export interface ExampleTokenizer {
  encode(text: string): number[];
}

export interface ReadExamplesOptions {
  task: "causal-lm" | "seq-cls";
  tokenizer?: ExampleTokenizer;
  /** Longer examples are cut to this many tokens. */
  seqLen: number;
  vocabSize: number;
  /** Appended to causal-LM text examples so the model learns to stop. */
  eosTokenId?: number;
}

/**
 * Decodes UTF-8 strictly (a leading byte-order mark is dropped): text that is not valid UTF-8 would
 * otherwise be trained on as replacement characters.
 * @throws LowrankError USAGE naming the first line (1-based) that is not valid UTF-8.
 */
export function decodeUtf8(bytes: Uint8Array, label: string): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    let start = 0;
    for (let line = 1; ; line++) {
      const end = bytes.indexOf(0x0a, start);
      const slice = bytes.subarray(start, end < 0 ? bytes.length : end);
      try {
        new TextDecoder("utf-8", { fatal: true }).decode(slice);
      } catch {
        throw new LowrankError("USAGE", `${label} line ${line}: not valid UTF-8 text (save the file as UTF-8)`);
      }
      if (end < 0) throw new LowrankError("USAGE", `${label}: not valid UTF-8 text (save the file as UTF-8)`);
      start = end + 1;
    }
  }
}

/**
 * Reads training data: a text file (one example a line), or JSONL whose lines hold `text` (tokenised
 * with the model's tokenizer) or `input_ids` (already tokenised), plus `label` for sequence
 * classification. Empty lines are skipped.
 * @throws LowrankError USAGE naming the file and line.
 */
export async function readExamples(file: string, options: ReadExamplesOptions): Promise<TrainingExample[]> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (error) {
    throw new LowrankError("USAGE", `--data ${file}: cannot read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  const text = decodeUtf8(bytes, `--data ${file}`);
  const isJsonl = /\.jsonl?$/i.test(file);
  const examples: TrainingExample[] = [];
  const lines = text.split(/\r?\n/);
  lines.forEach((line, index) => {
    if (line.trim() === "") return;
    const where = `--data ${file} line ${index + 1}`;
    let record: { text?: unknown; input_ids?: unknown; label?: unknown };
    if (isJsonl) {
      try {
        record = JSON.parse(line);
      } catch {
        throw new LowrankError("USAGE", `${where}: not valid JSON`);
      }
    } else {
      record = { text: line };
    }
    let ids: number[];
    if (Array.isArray(record.input_ids)) {
      if (!record.input_ids.every((x) => Number.isInteger(x) && x >= 0 && x < options.vocabSize)) {
        throw new LowrankError("USAGE", `${where}: \`input_ids\` must be integers from 0 to ${options.vocabSize - 1}`);
      }
      ids = record.input_ids as number[];
    } else if (typeof record.text === "string") {
      if (!options.tokenizer) throw new LowrankError("USAGE", `${where}: has text but the model folder has no tokenizer.json; give \`input_ids\` instead`);
      ids = options.tokenizer.encode(record.text);
      if (options.task === "causal-lm" && options.eosTokenId !== undefined) ids.push(options.eosTokenId);
      const outside = ids.find((id) => id >= options.vocabSize);
      if (outside !== undefined)
        throw new LowrankError(
          "USAGE",
          `${where}: the tokenizer gives id ${outside}, outside the model's vocabulary of ${options.vocabSize}; the tokenizer does not belong to this model`,
        );
    } else {
      throw new LowrankError("USAGE", `${where}: needs a \`text\` string or an \`input_ids\` array`);
    }
    if (ids.length === 0) return;
    const example: TrainingExample = { ids: ids.slice(0, options.seqLen) };
    if (options.task === "seq-cls") {
      if (!Number.isInteger(record.label) || (record.label as number) < 0)
        throw new LowrankError("USAGE", `${where}: sequence classification needs an integer \`label\``);
      example.label = record.label as number;
    }
    if (options.task === "causal-lm" && example.ids.length < 2) return;
    examples.push(example);
  });
  if (examples.length === 0) throw new LowrankError("USAGE", `--data ${file}: holds no usable example`);
  return examples;
}
