import { LowrankError } from "../errors/lowrank-error.js";
import { toFloat32, type DType, type Tensor } from "../formats/safetensors/dtype.js";
import type { LoraFactors } from "../math/lora-factors.js";
import { moduleHyperparameters } from "../targeting/resolve-targets.js";
import { PEFT_PREFIX, parseAdapterKey } from "./adapter-keys.js";
import type { LoraAdapter } from "./lora-adapter.js";

/**
 * One adapted module of an adapter, decoded from its PEFT keys without a base model: core's
 * LoraFactors (A [r, in], B [out, r], scaling with rank and alpha patterns and rsLoRA applied, DoRA's
 * magnitude, lora_B's bias) without the base weight's layout, which only a base model knows. For an
 * embedding, `inFeatures` is the number of embeddings and `outFeatures` the embedding dimension.
 */
export interface LoraModule extends Omit<LoraFactors, "layout"> {
  /** Module path as the adapter names it (the key without "base_model.model." and the factor suffix). */
  name: string;
  /** lora_alpha for this module (alpha_pattern applied). */
  alpha: number;
  /** lora_embedding_A/B rather than lora_A/B. */
  embedding: boolean;
  /** dtype of lora_A as stored. */
  dtype: DType;
  /** Elements of every tensor of the module (factors, magnitude, lora_B bias). */
  parameters: number;
}

/** An adapter's LoRA modules in file order, and the full tensors it replaces by base key (modules_to_save, trained biases). */
export interface AdapterModules {
  modules: Map<string, LoraModule>;
  replacements: Map<string, Tensor>;
}

interface Parts {
  A?: Tensor;
  B?: Tensor;
  magnitude?: Tensor;
  bias?: Tensor;
  embedding?: boolean;
}

const shapeText = (shape: readonly number[]): string => `[${shape.join(", ")}]`;

/**
 * The one reading of an adapter's tensors by module, used by every path (binding to a base, ONNX
 * slots, combination, analysis, inspect): groups lora_A/lora_B (or the embedding pair), the DoRA
 * magnitude and lora_B's bias per module, and checks what needs no base model — lora_A is [r, in],
 * lora_B is [out, r], r agrees with the config (`r`, `rank_pattern`), a magnitude or bias has one
 * value per output. Scalings come from the config (core's moduleHyperparameters).
 * @throws LowrankError ADAPTER_INVALID (a key without PEFT's prefix, a factor without its partner),
 *   SHAPE_MISMATCH (factor shapes that disagree with each other or with the config).
 */
export function collectLoraModules(adapter: LoraAdapter, label = "adapter"): AdapterModules {
  const parts = new Map<string, Parts>();
  const replacements = new Map<string, Tensor>();
  for (const [key, tensor] of adapter.tensors) {
    const parsed = parseAdapterKey(key);
    if (!parsed) throw new LowrankError("ADAPTER_INVALID", `${label}: tensor "${key}" does not start with PEFT's "${PEFT_PREFIX}" prefix`);
    if (parsed.role === "replacement") {
      replacements.set(parsed.baseKey, tensor);
      continue;
    }
    const entry = parts.get(parsed.module) ?? {};
    if (parsed.role === "lora_A" || parsed.role === "lora_embedding_A") entry.A = tensor;
    else if (parsed.role === "lora_B" || parsed.role === "lora_embedding_B") entry.B = tensor;
    else if (parsed.role === "magnitude") entry.magnitude = tensor;
    else entry.bias = tensor;
    if (parsed.role === "lora_embedding_A" || parsed.role === "lora_embedding_B") entry.embedding = true;
    parts.set(parsed.module, entry);
  }
  const modules = new Map<string, LoraModule>();
  for (const [name, t] of parts) modules.set(name, decodeModule(adapter, name, t, label));
  return { modules, replacements };
}

function decodeModule(adapter: LoraAdapter, name: string, t: Parts, label: string): LoraModule {
  const where = `${label}: module "${name}"`;
  if (!t.A || !t.B)
    throw new LowrankError("ADAPTER_INVALID", `${where} has ${t.A ? "lora_A but no lora_B" : t.B ? "lora_B but no lora_A" : "no lora_A or lora_B"}`);
  const [r, inFeatures] = t.A.shape;
  const [outFeatures, bCols] = t.B.shape;
  if (t.A.shape.length !== 2 || t.B.shape.length !== 2 || r !== bCols || r === undefined || inFeatures === undefined || outFeatures === undefined) {
    throw new LowrankError("SHAPE_MISMATCH", `${where}: lora_A ${shapeText(t.A.shape)} and lora_B ${shapeText(t.B.shape)} are not [r, in] and [out, r]`);
  }
  const hyper = moduleHyperparameters(adapter.config, name);
  if (hyper.r !== r) {
    throw new LowrankError("SHAPE_MISMATCH", `${where}: lora_A has rank ${r} but the config gives r = ${hyper.r} (check \`r\` and \`rank_pattern\`)`);
  }
  const perOutput = (tensor: Tensor | undefined, what: string): Float32Array | undefined => {
    if (!tensor) return undefined;
    if (tensor.shape.length !== 1 || tensor.shape[0] !== outFeatures)
      throw new LowrankError("SHAPE_MISMATCH", `${where}: ${what} is ${shapeText(tensor.shape)}, expected [${outFeatures}]`);
    return toFloat32(tensor, `${where} ${what}`);
  };
  const magnitude = perOutput(t.magnitude, "lora_magnitude_vector");
  const loraBias = perOutput(t.bias, "lora_B.bias");
  return {
    name,
    A: toFloat32(t.A, `${where} lora_A`),
    B: toFloat32(t.B, `${where} lora_B`),
    r,
    inFeatures,
    outFeatures,
    alpha: hyper.alpha,
    scaling: hyper.scaling,
    embedding: Boolean(t.embedding),
    ...(magnitude ? { magnitude } : {}),
    ...(loraBias ? { loraBias } : {}),
    dtype: t.A.dtype,
    parameters: r * (inFeatures + outFeatures) + (magnitude?.length ?? 0) + (loraBias?.length ?? 0),
  };
}
