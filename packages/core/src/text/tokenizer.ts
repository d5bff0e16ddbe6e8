import { Tokenizer } from "@huggingface/tokenizers";
import { readJsonFrom, readTextFrom, type FileSource } from "../files/file-source.js";

/** The few tokenizer operations training and generation need. */
export interface TextTokenizer {
  encode(text: string): number[];
  decode(ids: number[]): string;
  eosTokenId?: number;
  padTokenId?: number;
  /**
   * The model's chat template, as transformers finds it: the folder's chat_template.jinja, else
   * `chat_template` of tokenizer_config.json (a string, or the entry named "default" of a list).
   */
  chatTemplate?: string;
  /** The special tokens' texts of tokenizer_config.json (`bos_token`, `eos_token`, …), which a chat template receives. */
  specialTokens?: Readonly<Record<string, string | readonly string[]>>;
  /** The folder the tokenizer was loaded from, for messages. */
  source?: string;
}

/** The special-token keys transformers passes to a chat template (its `special_tokens_map`). */
const SPECIAL_TOKEN_KEYS = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"] as const;

/** A token of tokenizer_config.json: a string, or an AddedToken object's `content`. */
function tokenText(raw: unknown): string | undefined {
  if (typeof raw === "string") return raw;
  return raw && typeof raw === "object" && typeof (raw as { content?: unknown }).content === "string" ? (raw as { content: string }).content : undefined;
}

function tokenIdOf(tokenizer: Tokenizer, config: Record<string, unknown>, key: string): number | undefined {
  const text = tokenText(config[key]);
  if (text === undefined) return undefined;
  const ids = tokenizer.encode(text, { add_special_tokens: false } as never).ids;
  return ids.length === 1 ? Number(ids[0]) : undefined;
}

function specialTokensOf(config: Record<string, unknown>): Record<string, string | string[]> {
  const tokens: Record<string, string | string[]> = {};
  for (const key of SPECIAL_TOKEN_KEYS) {
    const text = tokenText(config[key]);
    if (text !== undefined) tokens[key] = text;
  }
  const extra = config.additional_special_tokens;
  if (Array.isArray(extra)) tokens.additional_special_tokens = extra.map(tokenText).filter((t): t is string => t !== undefined);
  return tokens;
}

async function chatTemplateOf(source: FileSource, config: Record<string, unknown>): Promise<string | undefined> {
  const file = await readTextFrom(source, "chat_template.jinja");
  if (file !== undefined) return file;
  const raw = config.chat_template;
  if (typeof raw === "string") return raw;
  if (Array.isArray(raw)) {
    const named = raw.find((t): t is { name: string; template: string } => t?.name === "default" && typeof t?.template === "string");
    return named?.template;
  }
  return undefined;
}

/**
 * A model's tokenizer.json (+ tokenizer_config.json) from any file source (a folder: loadTokenizer;
 * a URL or dropped files in the browser), through @huggingface/tokenizers, or undefined when the
 * source has none. Encodes without special tokens; EOS/PAD come from the config
 * files (tokenizer_config.json, then config.json); the chat template and special tokens' texts come
 * with it, for `messages` training data.
 */
export async function loadTokenizerFrom(source: FileSource, modelConfig: Record<string, unknown> = {}): Promise<TextTokenizer | undefined> {
  const json = await readJsonFrom(source, "tokenizer.json");
  if (!json) return undefined;
  const config = (await readJsonFrom(source, "tokenizer_config.json")) ?? {};
  const tokenizer = new Tokenizer(json, config);
  const configId = (key: string): number | undefined => (typeof modelConfig[key] === "number" ? (modelConfig[key] as number) : undefined);
  const eos = tokenIdOf(tokenizer, config, "eos_token") ?? configId("eos_token_id");
  const pad = tokenIdOf(tokenizer, config, "pad_token") ?? configId("pad_token_id") ?? eos;
  return {
    encode: (text) => tokenizer.encode(text, { add_special_tokens: false } as never).ids.map(Number),
    decode: (ids) => tokenizer.decode(ids, { skip_special_tokens: true, clean_up_tokenization_spaces: false } as never),
    eosTokenId: eos,
    padTokenId: pad,
    chatTemplate: await chatTemplateOf(source, config),
    // Older folders keep their special tokens in special_tokens_map.json; tokenizer_config.json's win.
    specialTokens: specialTokensOf({ ...(await readJsonFrom(source, "special_tokens_map.json")), ...config }),
    source: source.label,
  };
}
