import { LowrankError } from "../errors/lowrank-error.js";
import { toFloat32, type Tensor } from "../formats/safetensors/dtype.js";
import type { Logger } from "../logger.js";
import type { LoraFactors } from "../math/lora-factors.js";
import type { ModelDescription } from "../model/model-description.js";
import { resolveTargets, type LoraModulePlan, type TargetReport } from "../targeting/resolve-targets.js";
import { parseAdapterKey, type AdapterKey } from "./adapter-keys.js";
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

interface ModuleTensors {
  A?: Tensor;
  B?: Tensor;
  bias?: Tensor;
  magnitude?: Tensor;
  embedding?: boolean;
}

const shapeText = (shape: readonly number[]): string => `[${shape.join(", ")}]`;

/**
 * Matches an adapter's tensors to a base model: finds each module with PEFT's targeting rules,
 * checks every shape against the base layer, and turns the tensors into float32 factors with the
 * module's scaling (rank/alpha patterns and rsLoRA applied).
 * @throws LowrankError ADAPTER_INVALID (unknown keys or modules), SHAPE_MISMATCH (does not fit the base),
 *   TARGET_NOT_FOUND (config targets nothing in this base).
 */
export function bindAdapter(adapter: LoraAdapter, model: ModelDescription, options: { logger?: Logger; label?: string; layoutFromStorage?: boolean } = {}): BoundAdapter {
  const label = options.label ?? "adapter";
  const report = resolveTargets(adapter.config, model, options);
  const plans = new Map(report.targets.map((p) => [p.name, p]));
  const grouped = new Map<string, ModuleTensors>();
  const replacements = new Map<string, Tensor>();

  const rename = basePrefixMapping(model);
  for (const [key, tensor] of adapter.tensors) {
    const parsed = rename(parseAdapterKey(key));
    if (!parsed) throw new LowrankError("ADAPTER_INVALID", `${label}: tensor "${key}" does not start with PEFT's "base_model.model." prefix`);
    if (parsed.role === "replacement") {
      const base = model.tensors.get(parsed.baseKey);
      if (!base) throw new LowrankError("ADAPTER_INVALID", `${label}: tensor "${key}" replaces "${parsed.baseKey}", which the base model does not have`);
      if (shapeText(base.shape) !== shapeText(tensor.shape)) {
        throw new LowrankError("SHAPE_MISMATCH", `${label}: tensor "${key}" is ${shapeText(tensor.shape)} but the base's "${parsed.baseKey}" is ${shapeText(base.shape)}`);
      }
      replacements.set(parsed.baseKey, tensor);
      continue;
    }
    const entry = grouped.get(parsed.module) ?? {};
    if (parsed.role === "lora_A" || parsed.role === "lora_embedding_A") entry.A = tensor;
    else if (parsed.role === "lora_B" || parsed.role === "lora_embedding_B") entry.B = tensor;
    else if (parsed.role === "lora_B_bias") entry.bias = tensor;
    else entry.magnitude = tensor;
    if (parsed.role === "lora_embedding_A" || parsed.role === "lora_embedding_B") entry.embedding = true;
    grouped.set(parsed.module, entry);
  }

  const modules: BoundModule[] = [];
  for (const [name, t] of grouped) {
    const plan = plans.get(name);
    if (!plan) {
      const known = model.byName.get(name);
      if (!known) throw new LowrankError("ADAPTER_INVALID", `${label}: adapts module "${name}", which the base model does not have`);
      options.logger?.warn(`${label}: module "${name}" has LoRA weights but \`target_modules\` does not select it; ignored, as PEFT does`);
      continue;
    }
    if (!t.A || !t.B) throw new LowrankError("ADAPTER_INVALID", `${label}: module "${name}" has ${t.A ? "lora_A but no lora_B" : "lora_B but no lora_A"}`);
    const isEmbedding = plan.kind === "embedding";
    if (Boolean(t.embedding) !== isEmbedding) {
      throw new LowrankError("ADAPTER_INVALID", `${label}: module "${name}" is ${isEmbedding ? "an embedding but has lora_A/lora_B" : `a ${plan.kind} layer but has lora_embedding_A/B`}`);
    }
    const [aRows, aCols] = t.A.shape;
    const [bRows, bCols] = t.B.shape;
    const where = `${label}: module "${name}"`;
    if (t.A.shape.length !== 2 || t.B.shape.length !== 2 || aRows !== bCols) {
      throw new LowrankError("SHAPE_MISMATCH", `${where}: lora_A ${shapeText(t.A.shape)} and lora_B ${shapeText(t.B.shape)} are not [r, in] and [out, r]`);
    }
    if (aCols !== plan.inFeatures || bRows !== plan.outFeatures) {
      throw new LowrankError("SHAPE_MISMATCH", `${where}: factors ${shapeText(t.A.shape)} · ${shapeText(t.B.shape)} do not fit the base layer (in ${plan.inFeatures}, out ${plan.outFeatures})`);
    }
    if (aRows !== plan.r) {
      throw new LowrankError("SHAPE_MISMATCH", `${where}: lora_A has rank ${aRows} but the config gives r = ${plan.r} (check \`r\` and \`rank_pattern\`)`);
    }
    const factors: LoraFactors = {
      A: toFloat32(t.A, `${where} lora_A`),
      B: toFloat32(t.B, `${where} lora_B`),
      r: plan.r,
      inFeatures: plan.inFeatures,
      outFeatures: plan.outFeatures,
      scaling: plan.scaling,
      layout: plan.kind === "linear" ? "out_in" : "in_out",
    };
    if (t.magnitude) {
      if (t.magnitude.shape.length !== 1 || t.magnitude.shape[0] !== plan.outFeatures) {
        throw new LowrankError("SHAPE_MISMATCH", `${where}: lora_magnitude_vector is ${shapeText(t.magnitude.shape)}, expected [${plan.outFeatures}]`);
      }
      if (!adapter.config.use_dora) options.logger?.warn(`${where}: has a DoRA magnitude vector but \`use_dora\` is false; using it`);
      factors.magnitude = toFloat32(t.magnitude, `${where} lora_magnitude_vector`);
    } else if (adapter.config.use_dora) {
      throw new LowrankError("ADAPTER_INVALID", `${where}: \`use_dora\` is true but the file has no lora_magnitude_vector for it`);
    }
    if (t.bias) {
      if (t.bias.shape.length !== 1 || t.bias.shape[0] !== plan.outFeatures) {
        throw new LowrankError("SHAPE_MISMATCH", `${where}: lora_B.bias is ${shapeText(t.bias.shape)}, expected [${plan.outFeatures}]`);
      }
      factors.loraBias = toFloat32(t.bias, `${where} lora_B.bias`);
    }
    modules.push({ plan, factors });
  }
  const missing = report.targets.filter((p) => !grouped.has(p.name)).map((p) => p.name);
  if (missing.length > 0) {
    options.logger?.warn(`${label}: the config targets ${missing.length} module(s) with no weights in the file (${missing.slice(0, 3).join(", ")}); they are left unchanged`);
  }
  if (modules.length === 0 && replacements.size === 0) {
    throw new LowrankError("ADAPTER_INVALID", `${label}: no LoRA weights in the file match the modules the config targets`);
  }
  const order = new Map(model.modules.map((m, i) => [m.name, i]));
  modules.sort((a, b) => order.get(a.plan.name)! - order.get(b.plan.name)!);
  return { modules, replacements, report };
}

/** Base-model prefixes transformers adds in front of the bare model's modules. */
const BASE_MODEL_PREFIXES = ["transformer.", "model.", "roberta.", "bert.", "deberta.", "gpt_neox.", "encoder."];

/**
 * Adapter module names as the base checkpoint spells them. A checkpoint of the bare model
 * ("h.0.attn.c_attn") and an adapter made on the model with a head ("transformer.h.0.attn.c_attn")
 * differ by transformers' base-model prefix; like transformers, the prefix is added or dropped.
 */
function basePrefixMapping(model: ModelDescription): (key: AdapterKey | undefined) => AdapterKey | undefined {
  const fix = (name: string): string => {
    if (model.byName.has(name) || model.tensors.has(name)) return name;
    for (const prefix of BASE_MODEL_PREFIXES) {
      if (name.startsWith(prefix) && (model.byName.has(name.slice(prefix.length)) || model.tensors.has(name.slice(prefix.length)))) return name.slice(prefix.length);
      if (model.byName.has(prefix + name) || model.tensors.has(prefix + name)) return prefix + name;
    }
    return name;
  };
  return (key) => {
    if (!key) return key;
    return key.role === "replacement" ? { ...key, baseKey: fix(key.baseKey) } : { ...key, module: fix(key.module) };
  };
}
