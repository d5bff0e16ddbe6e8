import path from "node:path";
import { serializeLoraConfig } from "../config/write-lora-config.js";
import { writeDirectoryAtomic, writeFileAtomic } from "../formats/atomic-write.js";
import { writeSafetensors } from "../formats/safetensors/write-safetensors.js";
import type { LoraAdapter } from "./lora-adapter.js";
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE } from "./read-adapter.js";

/**
 * Writes a PEFT adapter folder as PEFT's save_pretrained does: adapter_config.json (sorted keys,
 * indent 2) and adapter_model.safetensors (metadata {"format": "pt"}). The folder appears complete
 * or not at all; files already in it are replaced one by one, each atomically. `extraFiles` (a model
 * card, training state) are written into the same folder in the same way.
 */
export async function writeAdapter(dir: string, adapter: LoraAdapter, extraFiles: Record<string, string | Uint8Array> = {}): Promise<void> {
  await writeDirectoryAtomic(dir, async (temp) => {
    await writeSafetensors(path.join(temp, ADAPTER_WEIGHTS_FILE), adapter.tensors, { format: "pt" });
    await writeFileAtomic(path.join(temp, ADAPTER_CONFIG_FILE), serializeLoraConfig(adapter.config));
    for (const [name, text] of Object.entries(extraFiles)) await writeFileAtomic(path.join(temp, name), text);
  });
}
