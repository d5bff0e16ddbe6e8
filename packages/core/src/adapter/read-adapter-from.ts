import { parseLoraConfigJson } from "../config/parse-lora-config.js";
import { LowrankError } from "../errors/lowrank-error.js";
import { fileLabel, type FileSource } from "../files/file-source.js";
import { parseSafetensors } from "../formats/safetensors/parse-safetensors.js";
import type { Logger } from "../logger.js";
import type { LoraAdapter } from "./lora-adapter.js";

export const ADAPTER_CONFIG_FILE = "adapter_config.json";
export const ADAPTER_WEIGHTS_FILE = "adapter_model.safetensors";
export const LEGACY_ADAPTER_WEIGHTS_FILE = "adapter_model.bin";

/**
 * Reads a PEFT adapter from any file source (a URL, a Hub repository, dropped files, OPFS):
 * adapter_config.json plus adapter_model.safetensors. The legacy adapter_model.bin is read from
 * folders in Node only (readAdapter); `lowrank convert --to peft` turns it into safetensors.
 * @throws LowrankError ADAPTER_INVALID, CONFIG_INVALID or SAFETENSORS_INVALID naming the file.
 */
export async function readAdapterFrom(source: FileSource, options: { logger?: Logger } = {}): Promise<LoraAdapter> {
  const configBytes = await source.read(ADAPTER_CONFIG_FILE);
  if (!configBytes) throw new LowrankError("ADAPTER_INVALID", `${source.label}: has no ${ADAPTER_CONFIG_FILE}`);
  const configLabel = fileLabel(source, ADAPTER_CONFIG_FILE);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(configBytes);
  } catch {
    throw new LowrankError("CONFIG_INVALID", `${configLabel}: not valid UTF-8 text`);
  }
  const config = parseLoraConfigJson(text, { label: configLabel, logger: options.logger });
  const weights = await source.read(ADAPTER_WEIGHTS_FILE);
  if (!weights) {
    const legacy = (await source.read(LEGACY_ADAPTER_WEIGHTS_FILE)) !== undefined;
    throw new LowrankError(
      "ADAPTER_INVALID",
      legacy
        ? `${source.label}: has only the legacy ${LEGACY_ADAPTER_WEIGHTS_FILE}, read from folders in Node; convert it with \`lowrank convert --to peft\``
        : `${source.label}: has no ${ADAPTER_WEIGHTS_FILE}`,
    );
  }
  return { config, tensors: parseSafetensors(weights, fileLabel(source, ADAPTER_WEIGHTS_FILE)).tensors };
}
