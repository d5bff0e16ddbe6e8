import { stat } from "node:fs/promises";
import path from "node:path";
import { readLoraConfig } from "../config/read-lora-config.js";
import { LowrankError } from "../errors/lowrank-error.js";
import type { Tensor } from "../formats/safetensors/dtype.js";
import { readSafetensors } from "../formats/safetensors/safetensors-file.js";
import { readTorchStateDict } from "../formats/torch/read-torch-state-dict.js";
import type { Logger } from "../logger.js";
import type { LoraAdapter } from "./lora-adapter.js";
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, LEGACY_ADAPTER_WEIGHTS_FILE } from "./read-adapter-from.js";

export { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, LEGACY_ADAPTER_WEIGHTS_FILE } from "./read-adapter-from.js";

const exists = async (p: string): Promise<boolean> => Boolean(await stat(p).catch(() => undefined));

/**
 * Reads a PEFT adapter folder: adapter_config.json plus adapter_model.safetensors, or the legacy
 * adapter_model.bin (PyTorch zip + pickle, parsed safely, never executed). Like PEFT, the
 * safetensors file wins when both exist.
 * @throws LowrankError ADAPTER_INVALID, CONFIG_INVALID, SAFETENSORS_INVALID or PICKLE_INVALID naming the file.
 */
export async function readAdapter(dir: string, options: { logger?: Logger } = {}): Promise<LoraAdapter> {
  const info = await stat(dir).catch(() => undefined);
  if (!info?.isDirectory())
    throw new LowrankError("ADAPTER_INVALID", `${dir}: not an adapter folder (expected ${ADAPTER_CONFIG_FILE} and ${ADAPTER_WEIGHTS_FILE})`);
  const configPath = path.join(dir, ADAPTER_CONFIG_FILE);
  if (!(await exists(configPath))) throw new LowrankError("ADAPTER_INVALID", `${dir}: has no ${ADAPTER_CONFIG_FILE}`);
  const config = await readLoraConfig(configPath, options);
  const safetensorsPath = path.join(dir, ADAPTER_WEIGHTS_FILE);
  const binPath = path.join(dir, LEGACY_ADAPTER_WEIGHTS_FILE);
  let tensors: Map<string, Tensor>;
  if (await exists(safetensorsPath)) {
    tensors = (await readSafetensors(safetensorsPath)).tensors;
  } else if (await exists(binPath)) {
    tensors = new Map();
    for (const [name, t] of await readTorchStateDict(binPath)) tensors.set(name, { dtype: t.dtype, shape: t.shape, data: t.data });
  } else {
    throw new LowrankError("ADAPTER_INVALID", `${dir}: has no ${ADAPTER_WEIGHTS_FILE} or ${LEGACY_ADAPTER_WEIGHTS_FILE}`);
  }
  return { config, tensors };
}
