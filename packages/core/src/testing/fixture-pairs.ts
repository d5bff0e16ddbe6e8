/** The PEFT fixture pairs in ../shared/fixtures: base folder, adapter folder, cases file, manifest key. */
export const FIXTURE_PAIRS = [
  { key: "gpt2", base: "gpt2-tiny", adapter: "gpt2-tiny-lora", cases: "gpt2-tiny-lora" },
  { key: "llama", base: "llama-tiny", adapter: "llama-tiny-lora", cases: "llama-tiny-lora" },
  { key: "roberta", base: "roberta-tiny", adapter: "roberta-tiny-lora", cases: "roberta-tiny-lora" },
  { key: "deberta", base: "deberta-v2-tiny", adapter: "deberta-v2-tiny-lora", cases: "deberta-v2-tiny-lora" },
  { key: "gpt2_dora", base: "gpt2-tiny", adapter: "gpt2-tiny-dora", cases: "gpt2-tiny-dora" },
  { key: "llama_embed", base: "llama-tiny", adapter: "llama-tiny-embed-lora", cases: "llama-tiny-embed-lora" },
  { key: "gpt2_bin", base: "gpt2-tiny", adapter: "gpt2-tiny-lora-bin", cases: "gpt2-tiny-lora" },
] as const;
