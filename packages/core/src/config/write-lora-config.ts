import { writeFileAtomic } from "../formats/atomic-write.js";
import { stringifyPythonJson } from "../formats/json/python-json.js";
import { loraConfigSchema, NEWER_PEFT_KEYS, type LoraConfig } from "./lora-config.js";

/** Fields PEFT types as float: written as "0.0", not "0", when the config did not come from a file. */
const FLOAT_FIELDS = ["/lora_dropout"];

function isDefault(value: unknown, fallback: unknown): boolean {
  return JSON.stringify(value) === JSON.stringify(fallback);
}

/**
 * Serialises a config as PEFT writes adapter_config.json: sorted keys, indent 2, Python number
 * style, no trailing newline. A config read from a file is written back byte for byte; keys that
 * only newer PEFT versions know are left out when at their default, so PEFT 0.12 can still load it.
 */
export function serializeLoraConfig(config: LoraConfig): string {
  const { extra, source, ...fields } = config;
  const present = new Set(source?.keys ?? []);
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(loraConfigSchema.shape)) {
    const value = (fields as Record<string, unknown>)[key];
    if (key in NEWER_PEFT_KEYS && !present.has(key) && isDefault(value, NEWER_PEFT_KEYS[key])) continue;
    out[key] = value;
  }
  Object.assign(out, extra);
  const floatPaths = new Set(source ? source.floatPaths : FLOAT_FIELDS);
  return stringifyPythonJson(out, { floatPaths });
}

/** Writes adapter_config.json atomically. */
export async function writeLoraConfig(filePath: string, config: LoraConfig): Promise<void> {
  await writeFileAtomic(filePath, serializeLoraConfig(config));
}
