import { LowrankError } from "../errors/lowrank-error.js";
import type { Tensor } from "../formats/safetensors/dtype.js";
import type { Logger } from "../logger.js";
import type { LoraFactors } from "../math/lora-factors.js";
import type { ModelDescription } from "../model/model-description.js";
import { resolveTargets, type LoraModulePlan, type TargetReport } from "../targeting/resolve-targets.js";
import { PEFT_PREFIX } from "./adapter-keys.js";
import { collectLoraModules } from "./lora-modules.js";
import type { LoraAdapter } from "./lora-adapter.js";

/** One adapted module: where it sits in the base and its factors, ready to merge or run. */
export interface BoundModule {
  plan: LoraModulePlan;
  factors: LoraFactors;
}

/** An adapter checked against a base model. */
export interface BoundAdapter {
  modules: BoundModule[];
  /** Base tensor key → tensor that replaces it (modules_to_save, trained biases, saved base layers). */
  replacements: Map<string, Tensor>;
  report: TargetReport;
}

const shapeText = (shape: readonly number[]): string => `[${shape.join(", ")}]`;

/**
 * Matches an adapter's tensors to a base model: reads them by module (core's collectLoraModules:
 * pairs, ranks against the config, scalings), finds each module with PEFT's targeting rules, and
 * checks every shape against the base layer. Returns float32 factors in the base weight's layout.
 * @throws LowrankError ADAPTER_INVALID (unknown keys or modules), SHAPE_MISMATCH (does not fit the base),
 *   TARGET_NOT_FOUND (config targets nothing in this base).
 */
export function bindAdapter(
  adapter: LoraAdapter,
  model: ModelDescription,
  options: { logger?: Logger; label?: string; layoutFromStorage?: boolean } = {},
): BoundAdapter {
  const label = options.label ?? "adapter";
  const collected = collectLoraModules(adapter, label);
  const report = resolveTargets(adapter.config, model, options);
  const plans = new Map(report.targets.map((p) => [p.name, p]));
  const inBase = baseName(model);

  const replacements = new Map<string, Tensor>();
  for (const [key, tensor] of collected.replacements) {
    const baseKey = inBase(key);
    const base = model.tensors.get(baseKey);
    if (!base) throw new LowrankError("ADAPTER_INVALID", `${label}: tensor "${PEFT_PREFIX}${key}" replaces "${baseKey}", which the base model does not have`);
    if (shapeText(base.shape) !== shapeText(tensor.shape)) {
      throw new LowrankError(
        "SHAPE_MISMATCH",
        `${label}: tensor "${PEFT_PREFIX}${key}" is ${shapeText(tensor.shape)} but the base's "${baseKey}" is ${shapeText(base.shape)}`,
      );
    }
    replacements.set(baseKey, tensor);
  }

  const modules: BoundModule[] = [];
  const found = new Set<string>();
  for (const m of collected.modules.values()) {
    const name = inBase(m.name);
    found.add(name);
    const plan = plans.get(name);
    if (!plan) {
      if (!model.byName.get(name)) throw new LowrankError("ADAPTER_INVALID", `${label}: adapts module "${name}", which the base model does not have`);
      options.logger?.warn(`${label}: module "${name}" has LoRA weights but \`target_modules\` does not select it; ignored, as PEFT does`);
      continue;
    }
    const where = `${label}: module "${name}"`;
    const isEmbedding = plan.kind === "embedding";
    if (m.embedding !== isEmbedding) {
      throw new LowrankError(
        "ADAPTER_INVALID",
        `${where} is ${isEmbedding ? "an embedding but has lora_A/lora_B" : `a ${plan.kind} layer but has lora_embedding_A/B`}`,
      );
    }
    if (m.inFeatures !== plan.inFeatures || m.outFeatures !== plan.outFeatures) {
      throw new LowrankError(
        "SHAPE_MISMATCH",
        `${where}: factors [${m.r}, ${m.inFeatures}] · [${m.outFeatures}, ${m.r}] do not fit the base layer (in ${plan.inFeatures}, out ${plan.outFeatures})`,
      );
    }
    if (m.magnitude && !adapter.config.use_dora) options.logger?.warn(`${where}: has a DoRA magnitude vector but \`use_dora\` is false; using it`);
    if (!m.magnitude && adapter.config.use_dora)
      throw new LowrankError("ADAPTER_INVALID", `${where}: \`use_dora\` is true but the file has no lora_magnitude_vector for it`);
    const factors: LoraFactors = {
      A: m.A,
      B: m.B,
      r: plan.r,
      inFeatures: plan.inFeatures,
      outFeatures: plan.outFeatures,
      scaling: plan.scaling,
      layout: plan.kind === "linear" ? "out_in" : "in_out",
      ...(m.magnitude ? { magnitude: m.magnitude } : {}),
      ...(m.loraBias ? { loraBias: m.loraBias } : {}),
    };
    modules.push({ plan, factors });
  }
  const missing = report.targets.filter((p) => !found.has(p.name)).map((p) => p.name);
  if (missing.length > 0) {
    options.logger?.warn(
      `${label}: the config targets ${missing.length} module(s) with no weights in the file (${missing.slice(0, 3).join(", ")}); they are left unchanged`,
    );
  }
  if (modules.length === 0 && replacements.size === 0) {
    throw new LowrankError("ADAPTER_INVALID", `${label}: no LoRA weights in the file match the modules the config targets`);
  }
  const order = new Map(model.modules.map((m, i) => [m.name, i]));
  modules.sort((a, b) => (order.get(a.plan.name) ?? 0) - (order.get(b.plan.name) ?? 0));
  return { modules, replacements, report };
}

/** Base-model prefixes transformers adds in front of the bare model's modules. */
const BASE_MODEL_PREFIXES = ["transformer.", "model.", "roberta.", "bert.", "deberta.", "gpt_neox.", "encoder."];

/**
 * Adapter module and tensor names as the base checkpoint spells them. A checkpoint of the bare model
 * ("h.0.attn.c_attn") and an adapter made on the model with a head ("transformer.h.0.attn.c_attn")
 * differ by transformers' base-model prefix; like transformers, the prefix is added or dropped.
 */
function baseName(model: ModelDescription): (name: string) => string {
  return (name: string): string => {
    if (model.byName.has(name) || model.tensors.has(name)) return name;
    for (const prefix of BASE_MODEL_PREFIXES) {
      if (name.startsWith(prefix) && (model.byName.has(name.slice(prefix.length)) || model.tensors.has(name.slice(prefix.length))))
        return name.slice(prefix.length);
      if (model.byName.has(prefix + name) || model.tensors.has(prefix + name)) return prefix + name;
    }
    return name;
  };
}
