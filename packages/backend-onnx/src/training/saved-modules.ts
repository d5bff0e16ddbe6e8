import { PEFT_PREFIX } from "@lowrank/core/internal";

/**
 * The checkpoint tensors of PEFT's modules_to_save (core's `resolveTargets(...).modulesToSave`,
 * e.g. RoBERTa's `classifier`), trained whole beside the factors and saved as PEFT saves them
 * (`get_peft_model_state_dict`) and the tfjs trainer does: every tensor under a saved module, under
 * `base_model.model.<checkpoint name>`.
 * @returns checkpoint name → adapter key (also the graph input name), in checkpoint order.
 */
export function savedModuleTensors(modulesToSave: readonly string[], tensorNames: Iterable<string>): Map<string, string> {
  const saved = new Map<string, string>();
  for (const name of tensorNames) if (modulesToSave.some((module) => name.startsWith(`${module}.`))) saved.set(name, `${PEFT_PREFIX}${name}`);
  return saved;
}
