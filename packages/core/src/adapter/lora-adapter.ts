import type { LoraConfig } from "../config/lora-config.js";
import type { Tensor } from "../formats/safetensors/dtype.js";

/** A PEFT LoRA adapter: its config and its tensors under PEFT's key names ("base_model.model.…"). */
export interface LoraAdapter {
  config: LoraConfig;
  tensors: Map<string, Tensor>;
}
