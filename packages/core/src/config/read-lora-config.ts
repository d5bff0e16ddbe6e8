import { readFile } from "node:fs/promises";
import { LowrankError } from "../errors/lowrank-error.js";
import type { Logger } from "../logger.js";
import { parseLoraConfigJson } from "./parse-lora-config.js";
import type { LoraConfig } from "./lora-config.js";

/** Reads and validates an adapter_config.json file. */
export async function readLoraConfig(filePath: string, options: { logger?: Logger } = {}): Promise<LoraConfig> {
  let text: string;
  try {
    text = await readFile(filePath, "utf8");
  } catch (error) {
    throw new LowrankError("ADAPTER_INVALID", `${filePath}: cannot read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  return parseLoraConfigJson(text, { ...options, label: filePath });
}
