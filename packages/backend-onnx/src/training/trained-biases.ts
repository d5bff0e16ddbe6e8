import type { LoraConfig } from "@lowrank/core";
import { PEFT_PREFIX } from "@lowrank/core/internal";
import type { TrainingSlot } from "./lora-plan.js";

/** GPT-2's causal-mask buffers: named like biases, but not parameters (PEFT neither trains nor saves them). */
const BUFFERS = /(^|\.)attn\.(bias|masked_bias)$/;

/**
 * The checkpoint biases a LoRA config trains beside its factors, as PEFT's `bias` marks them
 * (`mark_only_lora_as_trainable`) and saves them (`get_peft_model_state_dict`), and as the tfjs
 * trainer does: "all" every `….bias` tensor (LayerNorm's too), "lora_only" those of adapted modules.
 * An adapted module's bias is saved as `base_model.model.<module>.base_layer.bias`, any other under
 * its own name after the prefix.
 * @returns checkpoint name → adapter key (also the graph input name), in checkpoint order.
 */
export function trainedBiases(config: LoraConfig, slots: readonly TrainingSlot[], tensorNames: Iterable<string>): Map<string, string> {
  const biases = new Map<string, string>();
  if (config.bias === "none") return biases;
  const adapted = new Set(slots.map((s) => s.module));
  for (const name of tensorNames) {
    if (!name.endsWith(".bias") || BUFFERS.test(name)) continue;
    const module = name.slice(0, -".bias".length);
    if (config.bias === "lora_only" && !adapted.has(module)) continue;
    biases.set(name, adapted.has(module) ? `${PEFT_PREFIX}${module}.base_layer.bias` : `${PEFT_PREFIX}${name}`);
  }
  return biases;
}
