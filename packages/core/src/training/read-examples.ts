import { readFile } from "node:fs/promises";
import { LowrankError } from "../errors/lowrank-error.js";
import { ChatTemplate } from "../text/chat-template.js";
import type { TrainingExample } from "./batches.js";
import { conversationTokens, parseMessages } from "./conversation-tokens.js";
import { packExamples } from "./pack-examples.js";

/** What reading text data needs of a tokenizer (core's loadTokenizer gives all of it). */
export interface ExampleTokenizer {
  /** Tokenises without adding special tokens. */
  encode(text: string): number[];
  /** The model's chat template, for `messages` lines. */
  chatTemplate?: string;
  /** The special tokens' texts a chat template receives (`bos_token`, `eos_token`, …). */
  specialTokens?: Readonly<Record<string, string | readonly string[]>>;
  /** The model folder, for messages. */
  source?: string;
}

export interface ReadExamplesOptions {
  task: "causal-lm" | "seq-cls";
  tokenizer?: ExampleTokenizer;
  /** Longer examples are cut to this many tokens. */
  seqLen: number;
  vocabSize: number;
  /** Appended to causal-LM `text` and `completion` examples so the model learns to stop (unless they end with it). */
  eosTokenId?: number;
  /**
   * Packs the causal-LM examples into sequences of up to `seqLen` tokens (packExamples): the result
   * is PackedExample[], with `segments` and `positions` that a model must honour. No built-in backend
   * takes them yet.
   */
  packing?: boolean;
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

type LineRecord = { text?: unknown; input_ids?: unknown; label?: unknown; prompt?: unknown; completion?: unknown; messages?: unknown };

/** What one line becomes before truncation: its ids, and its labels when not every token is trained. */
interface LineTokens {
  ids: number[];
  labels?: number[];
}

/** The one format of a JSONL line, by its keys. */
function formatOf(record: LineRecord, where: string): "messages" | "prompt-completion" | "input_ids" | "text" | undefined {
  const has = (key: keyof LineRecord) => record[key] !== undefined;
  const chat = has("messages");
  const prompt = has("prompt") || has("completion");
  const plain = [has("input_ids") && "`input_ids`", has("text") && "`text`"].filter(Boolean);
  if (chat && (prompt || plain.length > 0))
    throw new LowrankError("USAGE", `${where}: has \`messages\` and ${prompt ? "`prompt`/`completion`" : plain[0]}; give one format per line`);
  if (prompt && plain.length > 0) throw new LowrankError("USAGE", `${where}: has \`prompt\`/\`completion\` and ${plain[0]}; give one format per line`);
  if (chat) return "messages";
  if (prompt) return "prompt-completion";
  if (Array.isArray(record.input_ids)) return "input_ids";
  if (typeof record.text === "string") return "text";
  return undefined;
}

/**
 * Reads training data: a text file (one example a line), or JSONL whose lines hold one of
 * - `text`: tokenised with the model's tokenizer (causal LM: EOS appended), every token trained;
 * - `input_ids`: already tokenised, used as they are, every token trained;
 * - `prompt` and `completion` (causal LM): prompt tokens then completion tokens (+ EOS), each
 *   tokenised on its own; the loss is on the completion and EOS only (TRL's completion-only loss);
 * - `messages` (causal LM): `[{"role", "content"}, …]` rendered with the model's chat template
 *   (conversationTokens); the loss is on the assistant messages only;
 * plus `label` for sequence classification (with `text` or `input_ids`). Empty lines are skipped;
 * examples are cut to `seqLen` tokens; a causal-LM example with no trained token after its first
 * (too short, or its completion cut off) is skipped. With `packing`, the examples are then packed.
 * @returns the examples; `labels` is set where some tokens are not trained (−100).
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
  const { tokenizer, eosTokenId, task } = options;
  let template: ChatTemplate | undefined;
  const chatTemplate = (where: string): ChatTemplate => {
    if (!tokenizer)
      throw new LowrankError("USAGE", `${where}: \`messages\` need the model's tokenizer and chat template, and the model folder has no tokenizer.json`);
    const source = tokenizer.chatTemplate;
    if (source === undefined)
      throw new LowrankError(
        "USAGE",
        `${where}: \`messages\` need the model's chat template, and ${tokenizer.source ?? "the model folder"} has none (\`chat_template\` in tokenizer_config.json, or chat_template.jinja)`,
      );
    template ??= new ChatTemplate(source, tokenizer.specialTokens, `${tokenizer.source ?? "the model folder"} chat_template`);
    return template;
  };
  const encode = (value: string, where: string): number[] => {
    if (!tokenizer) throw new LowrankError("USAGE", `${where}: has text but the model folder has no tokenizer.json; give \`input_ids\` instead`);
    const ids = tokenizer.encode(value);
    const outside = ids.find((id) => id >= options.vocabSize);
    if (outside !== undefined)
      throw new LowrankError(
        "USAGE",
        `${where}: the tokenizer gives id ${outside}, outside the model's vocabulary of ${options.vocabSize}; the tokenizer does not belong to this model`,
      );
    return ids;
  };
  // EOS ends causal-LM text so the model learns to stop; text that already ends with it keeps one (as TRL).
  const withEos = (ids: number[]): number[] => (task === "causal-lm" && eosTokenId !== undefined && ids.at(-1) !== eosTokenId ? [...ids, eosTokenId] : ids);
  const causalOnly = (format: string, where: string) => {
    if (task !== "causal-lm")
      throw new LowrankError(
        "USAGE",
        `${where}: ${format} lines train causal language models; sequence classification takes \`text\` or \`input_ids\` with a \`label\``,
      );
  };

  const tokensOf = (record: LineRecord, where: string): LineTokens => {
    switch (formatOf(record, where)) {
      case "messages": {
        causalOnly("`messages`", where);
        const messages = parseMessages(record.messages, where);
        return conversationTokens(messages, { template: chatTemplate(where), encode: (value) => encode(value, where), where });
      }
      case "prompt-completion": {
        causalOnly("`prompt`/`completion`", where);
        if (typeof record.prompt !== "string" || typeof record.completion !== "string")
          throw new LowrankError("USAGE", `${where}: \`prompt\` and \`completion\` must both be strings (for a conversation, use \`messages\`)`);
        const prompt = encode(record.prompt, where);
        const completion = withEos(encode(record.completion, where));
        return { ids: [...prompt, ...completion], labels: [...prompt.map(() => -100), ...completion] };
      }
      case "input_ids": {
        const ids = record.input_ids as unknown[];
        if (!ids.every((x) => Number.isInteger(x) && (x as number) >= 0 && (x as number) < options.vocabSize)) {
          throw new LowrankError("USAGE", `${where}: \`input_ids\` must be integers from 0 to ${options.vocabSize - 1}`);
        }
        return { ids: ids as number[] };
      }
      case "text":
        return { ids: withEos(encode(record.text as string, where)) };
      default:
        throw new LowrankError(
          "USAGE",
          `${where}: needs a \`text\` string, an \`input_ids\` array, \`prompt\` and \`completion\` strings, or a \`messages\` list`,
        );
    }
  };

  const examples: TrainingExample[] = [];
  text.split(/\r?\n/).forEach((line, index) => {
    if (line.trim() === "") return;
    const where = `--data ${file} line ${index + 1}`;
    let record: LineRecord;
    if (isJsonl) {
      try {
        record = JSON.parse(line);
      } catch {
        throw new LowrankError("USAGE", `${where}: not valid JSON`);
      }
      if (!record || typeof record !== "object" || Array.isArray(record)) throw new LowrankError("USAGE", `${where}: must be a JSON object`);
    } else {
      record = { text: line };
    }
    const tokens = tokensOf(record, where);
    const ids = tokens.ids.slice(0, options.seqLen);
    if (ids.length === 0) return;
    const example: TrainingExample = { ids };
    if (tokens.labels) example.labels = tokens.labels.slice(0, options.seqLen);
    if (task === "seq-cls") {
      if (!Number.isInteger(record.label) || (record.label as number) < 0)
        throw new LowrankError("USAGE", `${where}: sequence classification needs an integer \`label\``);
      example.label = record.label as number;
    }
    // Position t learns label t+1: an example needs a trained label after its first token.
    if (task === "causal-lm" && !(example.labels ?? ids).slice(1).some((l) => l >= 0)) return;
    examples.push(example);
  });
  if (examples.length === 0) throw new LowrankError("USAGE", `--data ${file}: holds no usable example`);
  return options.packing ? packExamples(examples, { seqLen: options.seqLen }) : examples;
}
