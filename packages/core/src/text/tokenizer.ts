import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import { LowrankError } from "../errors/lowrank-error.js";

/** The few tokenizer operations training and generation need. */
export interface TextTokenizer {
  encode(text: string): number[];
  decode(ids: number[]): string;
  eosTokenId?: number;
  padTokenId?: number;
}

async function readJson(file: string): Promise<Record<string, unknown> | undefined> {
  if (!(await stat(file).catch(() => undefined))) return undefined;
  try {
    return JSON.parse(await readFile(file, "utf8")) as Record<string, unknown>;
  } catch (error) {
    throw new LowrankError("CHECKPOINT_INVALID", `${file}: not valid JSON (${(error as Error).message.split("\n")[0]})`);
  }
}

function tokenIdOf(tokenizer: Tokenizer, config: Record<string, unknown>, key: string): number | undefined {
  const raw = config[key];
  const text =
    typeof raw === "string"
      ? raw
      : raw && typeof raw === "object" && typeof (raw as { content?: unknown }).content === "string"
        ? (raw as { content: string }).content
        : undefined;
  if (text === undefined) return undefined;
  const ids = tokenizer.encode(text, { add_special_tokens: false } as never).ids;
  return ids.length === 1 ? Number(ids[0]) : undefined;
}

/**
 * The model folder's tokenizer.json (+ tokenizer_config.json), through @huggingface/tokenizers, or
 * undefined when the folder has none. Encodes without special tokens; EOS/PAD come from the config
 * files (tokenizer_config.json, then config.json).
 */
export async function loadTokenizer(modelDir: string, modelConfig: Record<string, unknown> = {}): Promise<TextTokenizer | undefined> {
  const json = await readJson(path.join(modelDir, "tokenizer.json"));
  if (!json) return undefined;
  const config = (await readJson(path.join(modelDir, "tokenizer_config.json"))) ?? {};
  const tokenizer = new Tokenizer(json, config);
  const configId = (key: string): number | undefined => (typeof modelConfig[key] === "number" ? (modelConfig[key] as number) : undefined);
  const eos = tokenIdOf(tokenizer, config, "eos_token") ?? configId("eos_token_id");
  const pad = tokenIdOf(tokenizer, config, "pad_token") ?? configId("pad_token_id") ?? eos;
  return {
    encode: (text) => tokenizer.encode(text, { add_special_tokens: false } as never).ids.map(Number),
    decode: (ids) => tokenizer.decode(ids, { skip_special_tokens: true, clean_up_tokenization_spaces: false } as never),
    eosTokenId: eos,
    padTokenId: pad,
  };
}
