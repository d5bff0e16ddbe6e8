import { PEFT_PREFIX, parseAdapterKey } from "../adapter/adapter-keys.js";
import type { LoraAdapter } from "../adapter/lora-adapter.js";
import { LowrankError } from "../errors/lowrank-error.js";
import { toFloat32, type DType, type Tensor } from "../formats/safetensors/dtype.js";
import type { LoraFactors } from "../math/lora-factors.js";
import { moduleHyperparameters } from "../targeting/resolve-targets.js";

/**
 * One adapted module of an adapter, decoded from its PEFT keys without a base model: core's
 * LoraFactors (A [r, in], B [out, r], scaling with rank and alpha patterns applied, DoRA's magnitude)
 * without the base weight's layout, which only a base model knows. For an embedding, `inFeatures`
 * is the number of embeddings and `outFeatures` the embedding dimension.
 */
export interface LoraModule extends Omit<LoraFactors, "layout" | "loraBias"> {
  /** Module path in the base model (the key without "base_model.model." and the factor suffix). */
  name: string;
  /** lora_embedding_A/B rather than lora_A/B. */
  embedding: boolean;
  /** Whether the adapter has lora_B.bias for this module (PEFT's lora_bias). */
  hasLoraBias: boolean;
  /** dtype of lora_A as stored. */
  dtype: DType;
}

/** An adapter's LoRA modules in file order, plus the base keys of the full tensors it replaces (modules_to_save). */
export interface AdapterModules {
  modules: Map<string, LoraModule>;
  replacements: string[];
}

interface Parts {
  A?: Tensor;
  B?: Tensor;
  magnitude?: Tensor;
  bias?: boolean;
  embedding?: boolean;
}

const shapeText = (shape: readonly number[]): string => `[${shape.join(", ")}]`;

/**
 * Groups an adapter's tensors by module and checks each pair of factors: lora_A is [r, in],
 * lora_B is [out, r], and r agrees with the config (`r`, `rank_pattern`). Works without the base
 * model, so module names are the adapter's own.
 * @throws LowrankError ADAPTER_INVALID (a key without PEFT's prefix, a factor without its partner),
 *   SHAPE_MISMATCH (factor shapes that disagree with each other or with the config).
 */
export function collectLoraModules(adapter: LoraAdapter, label = "adapter"): AdapterModules {
  const parts = new Map<string, Parts>();
  const replacements: string[] = [];
  for (const [key, tensor] of adapter.tensors) {
    const parsed = parseAdapterKey(key);
    if (!parsed) throw new LowrankError("ADAPTER_INVALID", `${label}: tensor "${key}" does not start with PEFT's "${PEFT_PREFIX}" prefix`);
    if (parsed.role === "replacement") {
      replacements.push(parsed.baseKey);
      continue;
    }
    const entry = parts.get(parsed.module) ?? {};
    if (parsed.role === "lora_A" || parsed.role === "lora_embedding_A") entry.A = tensor;
    else if (parsed.role === "lora_B" || parsed.role === "lora_embedding_B") entry.B = tensor;
    else if (parsed.role === "magnitude") entry.magnitude = tensor;
    else entry.bias = true;
    if (parsed.role === "lora_embedding_A" || parsed.role === "lora_embedding_B") entry.embedding = true;
    parts.set(parsed.module, entry);
  }
  const modules = new Map<string, LoraModule>();
  for (const [name, t] of parts) {
    const where = `${label}: module "${name}"`;
    if (!t.A || !t.B) throw new LowrankError("ADAPTER_INVALID", `${where} has ${t.A ? "lora_A but no lora_B" : t.B ? "lora_B but no lora_A" : "no lora_A or lora_B"}`);
    const [r, inFeatures] = t.A.shape;
    const [outFeatures, bCols] = t.B.shape;
    if (t.A.shape.length !== 2 || t.B.shape.length !== 2 || r !== bCols) {
      throw new LowrankError("SHAPE_MISMATCH", `${where}: lora_A ${shapeText(t.A.shape)} and lora_B ${shapeText(t.B.shape)} are not [r, in] and [out, r]`);
    }
    const hyper = moduleHyperparameters(adapter.config, name);
    if (hyper.r !== r) {
      throw new LowrankError("SHAPE_MISMATCH", `${where}: lora_A has rank ${r} but the config gives r = ${hyper.r} (check \`r\` and \`rank_pattern\`)`);
    }
    modules.set(name, {
      name,
      A: toFloat32(t.A, `${where} lora_A`),
      B: toFloat32(t.B, `${where} lora_B`),
      r,
      inFeatures,
      outFeatures,
      scaling: hyper.scaling,
      embedding: Boolean(t.embedding),
      magnitude: t.magnitude ? toFloat32(t.magnitude, `${where} lora_magnitude_vector`) : undefined,
      hasLoraBias: Boolean(t.bias),
      dtype: t.A.dtype,
    });
  }
  return { modules, replacements };
}
