import { adapterKey, PEFT_PREFIX } from "../adapter/adapter-keys.js";
import type { LoraAdapter } from "../adapter/lora-adapter.js";
import { collectLoraModules } from "../adapter/lora-modules.js";
import { createLoraConfig } from "../config/lora-config.js";
import { LowrankError } from "../errors/lowrank-error.js";
import { float32Tensor, type Tensor } from "../formats/safetensors/dtype.js";
import { transpose } from "../math/low-rank-update.js";
import type { OnnxAdapterParameter } from "./onnx-adapter-file.js";

/**
 * How an ONNX model with LoRA inputs names them: Olive's (`model.layers.0.self_attn.q_proj.lora_A.weight`,
 * PEFT's key with `base_model.model.model` shortened to `model`) or backend-onnx's runtime slots
 * (`lowrank.lora.<module>.A` / `.B`). Both feed Aᵀ [in, r] and scaling·Bᵀ [r, out].
 */
export type OnnxAdapterNaming = "olive" | "lowrank";

function inputNames(module: string, naming: OnnxAdapterNaming, embedding: boolean): [string, string] {
  if (naming === "lowrank") return [`lowrank.lora.${module}.A`, `lowrank.lora.${module}.B`];
  const key = (role: "lora_A" | "lora_B") => adapterKey(module, embedding ? (role === "lora_A" ? "lora_embedding_A" : "lora_embedding_B") : role);
  const olive = (k: string) => k.replace(`${PEFT_PREFIX}model.`, "model.");
  return [olive(key("lora_A")), olive(key("lora_B"))];
}

/**
 * A PEFT adapter as ONNX Runtime adapter parameters: per module Aᵀ [in, r] and scaling·Bᵀ [r, out]
 * (each module's own scaling: rank and alpha patterns and rsLoRA exact), named for `naming`.
 * @throws LowrankError USAGE for what runtime LoRA inputs cannot hold (DoRA, lora_B's bias, modules_to_save or trained biases).
 */
export function peftToOnnxAdapter(adapter: LoraAdapter, naming: OnnxAdapterNaming = "olive", label = "adapter"): OnnxAdapterParameter[] {
  const { modules, replacements } = collectLoraModules(adapter, label);
  const refuse = (what: string) => new LowrankError("USAGE", `${label}: ${what} cannot be written as an ONNX Runtime adapter (LoRA inputs only)`);
  if (replacements.size > 0) throw refuse(`whole tensors (modules_to_save or trained biases: ${[...replacements.keys()].slice(0, 3).join(", ")})`);
  return [...modules.values()].flatMap((m) => {
    if (m.magnitude) throw refuse(`DoRA (${m.name})`);
    if (m.loraBias) throw refuse(`lora_B's bias (lora_bias, ${m.name})`);
    const [a, b] = inputNames(m.name, naming, m.embedding);
    return [
      { name: a, dims: [m.inFeatures, m.r], values: transpose(m.A, m.r, m.inFeatures) },
      { name: b, dims: [m.r, m.outFeatures], values: transpose(m.B, m.outFeatures, m.r).map((v) => v * m.scaling) },
    ];
  });
}

/** The module and factor an adapter parameter name stands for (either naming), or undefined. */
function parseInputName(name: string): { module: string; role: "A" | "B"; embedding: boolean } | undefined {
  const slot = /^lowrank\.lora\.(.+)\.(A|B)$/.exec(name);
  if (slot) return { module: slot[1]!, role: slot[2] as "A" | "B", embedding: false };
  const olive = /^(?:base_model\.model\.)?(.+)\.lora_(embedding_)?(A|B)(?:\.weight)?$/.exec(name);
  return olive ? { module: olive[1]!, role: olive[3] as "A" | "B", embedding: olive[2] !== undefined } : undefined;
}

/**
 * ONNX Runtime adapter parameters back as a PEFT adapter: A = (Aᵀ)ᵀ, B = (scaling·Bᵀ)ᵀ with scaling 1
 * (lora_alpha = r, and alpha = r for modules of another rank), the modules listed by name.
 * @throws LowrankError CHECKPOINT_INVALID for a parameter that is no LoRA input or lacks its pair.
 */
export function onnxAdapterToPeft(
  parameters: readonly OnnxAdapterParameter[],
  options: { label: string; fanInFanOut?: boolean; baseModel?: string },
): LoraAdapter {
  const bad = (why: string) => new LowrankError("CHECKPOINT_INVALID", `${options.label}: ${why}`);
  const parts = new Map<string, { A?: OnnxAdapterParameter; B?: OnnxAdapterParameter; embedding: boolean }>();
  for (const p of parameters) {
    const parsed = parseInputName(p.name);
    if (!parsed) throw bad(`parameter "${p.name}" is not a LoRA input (…lora_A.weight / …lora_B.weight, or lowrank.lora.<module>.A / .B)`);
    if (p.dims.length !== 2) throw bad(`parameter "${p.name}" has dims [${p.dims.join(", ")}]; LoRA inputs are 2-D`);
    const entry = parts.get(parsed.module) ?? { embedding: parsed.embedding };
    entry[parsed.role] = p;
    parts.set(parsed.module, entry);
  }
  const tensors = new Map<string, Tensor>();
  const ranks = new Map<string, number>();
  for (const [module, { A, B, embedding }] of parts) {
    if (!A || !B) throw bad(`module "${module}" has ${A ? "no B" : "no A"} input`);
    const [inFeatures, r] = A.dims as [number, number];
    const out = B.dims[1]!;
    if (B.dims[0] !== r) throw bad(`module "${module}": A is [${A.dims.join(", ")}] but B is [${B.dims.join(", ")}]`);
    tensors.set(adapterKey(module, embedding ? "lora_embedding_A" : "lora_A"), float32Tensor(transpose(A.values, inFeatures, r), [r, inFeatures]));
    tensors.set(adapterKey(module, embedding ? "lora_embedding_B" : "lora_B"), float32Tensor(transpose(B.values, r, out), [out, r]));
    ranks.set(module, r);
  }
  if (ranks.size === 0) throw bad("holds no LoRA inputs");
  const r = [...ranks.values()][0]!;
  const others = [...ranks].filter(([, rm]) => rm !== r);
  const config = createLoraConfig({
    r,
    lora_alpha: r,
    rank_pattern: Object.fromEntries(others),
    alpha_pattern: Object.fromEntries(others),
    target_modules: [...ranks.keys()],
    fan_in_fan_out: options.fanInFanOut ?? false,
    task_type: "CAUSAL_LM",
    ...(options.baseModel ? { base_model_name_or_path: options.baseModel } : {}),
  });
  return { config, tensors };
}
