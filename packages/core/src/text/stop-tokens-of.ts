/**
 * The stop tokens from parsed generation_config.json and config.json (in that order; undefined for
 * an absent file): the first `eos_token_id` given, else the tokenizer's end-of-sequence token.
 */
export function stopTokensOf(configs: readonly unknown[], tokenizerEos?: number): number[] | undefined {
  for (const config of configs) {
    const eos = (config as { eos_token_id?: unknown } | undefined)?.eos_token_id;
    const ids = typeof eos === "number" ? [eos] : Array.isArray(eos) ? eos.filter((x): x is number => Number.isInteger(x)) : [];
    if (ids.length > 0) return ids;
  }
  return tokenizerEos === undefined ? undefined : [tokenizerEos];
}
