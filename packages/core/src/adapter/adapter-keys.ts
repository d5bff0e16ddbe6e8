/** PEFT's key naming in adapter_model files. */
export const PEFT_PREFIX = "base_model.model.";

/** What one adapter tensor is, decoded from its PEFT key. */
export type AdapterKey =
  | { role: "lora_A" | "lora_B" | "lora_B_bias" | "magnitude"; module: string }
  | { role: "lora_embedding_A" | "lora_embedding_B"; module: string }
  | { role: "replacement"; baseKey: string };

const FACTOR = /^(.+)\.lora_(A|B)(?:\.[^.]+)?\.(weight|bias)$/;
const EMBEDDING = /^(.+)\.lora_embedding_(A|B)(?:\.[^.]+)?$/;
const MAGNITUDE = /^(.+)\.lora_magnitude_vector(?:\.[^.]+)?(?:\.weight)?$/;

/**
 * Decodes a PEFT adapter key ("base_model.model.<module>.lora_A.weight", "...lora_embedding_B",
 * "...lora_magnitude_vector", or a full tensor such as "...classifier.dense.weight" /
 * "...embed_tokens.base_layer.weight" that replaces a base tensor). Returns undefined when the
 * key lacks PEFT's prefix.
 */
export function parseAdapterKey(key: string): AdapterKey | undefined {
  if (!key.startsWith(PEFT_PREFIX)) return undefined;
  const rest = key.slice(PEFT_PREFIX.length);
  let m = MAGNITUDE.exec(rest);
  if (m) return { role: "magnitude", module: m[1]! };
  m = EMBEDDING.exec(rest);
  if (m) return { role: m[2] === "A" ? "lora_embedding_A" : "lora_embedding_B", module: m[1]! };
  m = FACTOR.exec(rest);
  if (m) {
    if (m[3] === "bias") return m[2] === "B" ? { role: "lora_B_bias", module: m[1]! } : { role: "replacement", baseKey: rest };
    return { role: m[2] === "A" ? "lora_A" : "lora_B", module: m[1]! };
  }
  const baseKey = rest.replace(/\.base_layer\./g, ".").replace(/\.modules_to_save\.[^.]+\./g, ".");
  return { role: "replacement", baseKey };
}

/** The PEFT key of a module's factor. */
export function adapterKey(module: string, role: "lora_A" | "lora_B" | "lora_B_bias" | "magnitude" | "lora_embedding_A" | "lora_embedding_B"): string {
  const suffix = {
    lora_A: "lora_A.weight",
    lora_B: "lora_B.weight",
    lora_B_bias: "lora_B.bias",
    magnitude: "lora_magnitude_vector",
    lora_embedding_A: "lora_embedding_A",
    lora_embedding_B: "lora_embedding_B",
  }[role];
  return `${PEFT_PREFIX}${module}.${suffix}`;
}
