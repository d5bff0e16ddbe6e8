import { adapterKey } from "../adapter/adapter-keys.js";
import type { LoraAdapter } from "../adapter/lora-adapter.js";
import { collectLoraModules } from "../adapter/lora-modules.js";
import { createLoraConfig } from "../config/lora-config.js";
import { LowrankError } from "../errors/lowrank-error.js";
import { float32Tensor, type Tensor } from "../formats/safetensors/dtype.js";
import type { ModelDescription } from "../model/model-description.js";
import { encodeGguf, type GgmlTypeName, type GgufTensor, type GgufValue } from "./gguf-file.js";
import { transpose } from "../math/low-rank-update.js";

/** llama.cpp's architecture name for each model type it converts LoRA for. */
const GGUF_ARCHITECTURES: Record<string, string> = {
  llama: "llama",
  mistral: "llama",
  qwen2: "qwen2",
  phi3: "phi3",
  gemma: "gemma",
  gemma2: "gemma2",
  gpt2: "gpt2",
};

/** The block-relative module paths and llama.cpp's tensor names for them (convert_hf_to_gguf's tensor map). */
const BLOCK_NAMES: Record<string, string> = {
  "self_attn.q_proj": "attn_q",
  "self_attn.k_proj": "attn_k",
  "self_attn.v_proj": "attn_v",
  "self_attn.o_proj": "attn_output",
  "self_attn.qkv_proj": "attn_qkv",
  "mlp.gate_proj": "ffn_gate",
  "mlp.up_proj": "ffn_up",
  "mlp.gate_up_proj": "ffn_up",
  "mlp.down_proj": "ffn_down",
  "attn.c_attn": "attn_qkv",
  "attn.c_proj": "attn_output",
  "mlp.c_fc": "ffn_up",
  "mlp.c_proj": "ffn_down",
};

/** A base model as the conversion needs it: config.json and core's module description. */
export interface ConversionBase {
  config: Record<string, unknown>;
  description: ModelDescription;
  label: string;
}

/** llama.cpp's architecture for a base, or a LowrankError naming what it is. */
export function ggufArchitecture(base: ConversionBase): string {
  const type = String(base.config.model_type);
  const arch = GGUF_ARCHITECTURES[type];
  if (!arch)
    throw new LowrankError(
      "USAGE",
      `${base.label}: model_type "${type}" has no GGUF LoRA mapping in lowrank (supported: ${Object.keys(GGUF_ARCHITECTURES).join(", ")})`,
    );
  return arch;
}

/** llama.cpp's tensor name (without .lora_a/.lora_b) of a module, e.g. "blk.3.attn_q.weight", or undefined. */
export function ggufTensorName(module: string): string | undefined {
  if (/(^|\.)(embed_tokens|wte)$/.test(module)) return "token_embd.weight";
  if (/(^|\.)lm_head$/.test(module)) return "output.weight";
  const m = /(?:^|\.)(?:layers|h)\.(\d+)\.(.+)$/.exec(module);
  const name = m ? BLOCK_NAMES[m[2]!] : undefined;
  return m && name ? `blk.${m[1]}.${name}.weight` : undefined;
}

/**
 * The rows of lora_B that llama.cpp's LLaMA/Mistral conversion permutes, as it permutes q_proj and
 * k_proj for its RoPE layout: within each head of `hd` rows, row j takes row (j mod 2)·hd/2 + ⌊j/2⌋.
 * Undefined for other modules and model types.
 */
function ropePermutation(base: ConversionBase, module: string): number | undefined {
  if (GGUF_ARCHITECTURES[String(base.config.model_type)] !== "llama") return undefined;
  const heads = Number(base.config.num_attention_heads);
  if (module.endsWith("self_attn.q_proj")) return heads;
  if (module.endsWith("self_attn.k_proj")) return Number(base.config.num_key_value_heads ?? heads);
  return undefined;
}

/** B [out, r] with its rows permuted for `heads` heads (inverse: back to PEFT's order). */
export function permuteRows(B: Float32Array, out: number, r: number, heads: number, inverse = false): Float32Array {
  const hd = out / heads;
  const result = new Float32Array(B.length);
  for (let h = 0; h < heads; h++)
    for (let j = 0; j < hd; j++) {
      const from = h * hd + (j % 2) * (hd / 2) + Math.floor(j / 2);
      const to = h * hd + j;
      const [dst, src] = inverse ? [from, to] : [to, from];
      result.set(B.subarray(src * r, (src + 1) * r), dst * r);
    }
  return result;
}

/**
 * A PEFT adapter as a llama.cpp LoRA GGUF (convert_lora_to_gguf.py's file): general.architecture of
 * the base, adapter.lora.alpha, `blk.N.<name>.weight.lora_a` = lora_A [r, in] and `.lora_b` = lora_B
 * [out, r] (LLaMA's q/k rows permuted as llama.cpp permutes the base), token_embd's lora_a = the
 * embedding's Aᵀ. llama.cpp scales every module by alpha ÷ its rank, so a module whose PEFT scaling
 * differs (alpha_pattern, rsLoRA) has the ratio folded into its lora_b: each module's update is PEFT's.
 * `type`: f32 (default), f16, bf16 or q8_0 (rows not a multiple of 32 fall back to f16, as llama.cpp does).
 * @throws LowrankError USAGE for what GGUF cannot hold (DoRA, lora_B's bias, modules_to_save or
 *   trained biases) or a module llama.cpp has no name for.
 */
export function peftToGguf(adapter: LoraAdapter, base: ConversionBase, options: { type?: GgmlTypeName; name?: string } = {}): Uint8Array {
  const arch = ggufArchitecture(base);
  const { modules, replacements } = collectLoraModules(adapter, options.name ?? "adapter");
  const refuse = (what: string) => new LowrankError("USAGE", `${options.name ?? "adapter"}: ${what} cannot be written as a llama.cpp GGUF LoRA`);
  if (replacements.size > 0) throw refuse(`whole tensors (modules_to_save or trained biases: ${[...replacements.keys()].slice(0, 3).join(", ")})`);
  const alpha = adapter.config.lora_alpha;
  const tensors: GgufTensor[] = [];
  const type = options.type ?? "F32";
  const typed = (shape: number[]): GgmlTypeName => (type === "Q8_0" && shape.at(-1)! % 32 !== 0 ? "F16" : type);
  for (const m of modules.values()) {
    if (m.magnitude) throw refuse(`DoRA (lora_magnitude_vector of ${m.name})`);
    if (m.loraBias) throw refuse(`lora_B's bias (lora_bias, ${m.name})`);
    const name = ggufTensorName(m.name);
    if (!name) throw refuse(`LoRA on "${m.name}" (llama.cpp names no such tensor for ${arch})`);
    // llama.cpp's scale is alpha / r; fold the rest of PEFT's scaling into B.
    const fold = m.scaling / (alpha / m.r);
    let B = fold === 1 ? m.B : m.B.map((v) => v * fold);
    const heads = ropePermutation(base, m.name);
    if (heads !== undefined) B = permuteRows(B, m.outFeatures, m.r, heads);
    const [a, aShape] = m.embedding ? [transpose(m.A, m.r, m.inFeatures), [m.inFeatures, m.r]] : [m.A, [m.r, m.inFeatures]];
    tensors.push({ name: `${name}.lora_a`, shape: aShape, type: typed(aShape), values: a });
    tensors.push({ name: `${name}.lora_b`, shape: [m.outFeatures, m.r], type: typed([m.outFeatures, m.r]), values: B });
  }
  const metadata: [string, GgufValue][] = [
    ["general.architecture", { type: "string", value: arch }],
    ["general.type", { type: "string", value: "adapter" }],
    ["adapter.type", { type: "string", value: "lora" }],
    ["general.name", { type: "string", value: options.name ?? "lowrank adapter" }],
    ["adapter.lora.alpha", { type: "float32", value: alpha }],
    ["general.quantization_version", { type: "uint32", value: 2 }],
  ];
  return encodeGguf(metadata, tensors);
}

/**
 * A llama.cpp LoRA GGUF back as a PEFT adapter for `base`: each tensor pair to its module (the base's
 * modules named as llama.cpp names them), LLaMA's q/k rows put back in PEFT's order, lora_alpha =
 * adapter.lora.alpha with the most common rank as `r` and a rank_pattern for the others (PEFT's
 * scaling alpha ÷ r is llama.cpp's), the adapted modules listed by name in target_modules.
 * @throws LowrankError CHECKPOINT_INVALID for a file that is not a LoRA adapter for this architecture
 *   or holds a tensor without its pair or module.
 */
export function ggufToPeft(file: { metadata: Map<string, unknown>; tensors: GgufTensor[] }, base: ConversionBase, label: string): LoraAdapter {
  const arch = ggufArchitecture(base);
  const meta = (key: string) => file.metadata.get(key);
  const bad = (why: string) => new LowrankError("CHECKPOINT_INVALID", `${label}: ${why}`);
  if (meta("general.type") !== "adapter" || meta("adapter.type") !== "lora") throw bad("not a LoRA adapter GGUF (general.type / adapter.type)");
  if (meta("general.architecture") !== arch) throw bad(`general.architecture is "${meta("general.architecture")}", the base is "${arch}" (${base.label})`);
  const alpha = meta("adapter.lora.alpha");
  if (typeof alpha !== "number" || !(alpha > 0)) throw bad("adapter.lora.alpha is missing or not positive");
  const byGguf = new Map<string, string>();
  for (const m of base.description.modules) {
    const name = m.kind === "linear" || m.kind === "conv1d" || m.kind === "embedding" ? ggufTensorName(m.name) : undefined;
    if (name && !(m.kind === "embedding" && name !== "token_embd.weight")) byGguf.set(name, m.name);
  }
  const tensors = new Map<string, Tensor>();
  const ranks = new Map<string, number>();
  const byName = new Map(file.tensors.map((t) => [t.name, t]));
  for (const t of file.tensors) {
    if (!t.name.endsWith(".lora_a")) {
      if (!t.name.endsWith(".lora_b")) throw bad(`tensor "${t.name}" is not a lora_a / lora_b`);
      continue;
    }
    const stem = t.name.slice(0, -".lora_a".length);
    const b = byName.get(`${stem}.lora_b`);
    const module = byGguf.get(stem);
    if (!b) throw bad(`"${t.name}" has no ${stem}.lora_b`);
    if (!module) throw bad(`"${stem}" is no module of ${base.label}`);
    const embedding = stem === "token_embd.weight";
    const r = embedding ? t.shape[1]! : t.shape[0]!;
    const [out] = b.shape as [number, number];
    const A = embedding ? transpose(t.values, t.shape[0]!, r) : t.values;
    const inFeatures = embedding ? t.shape[0]! : t.shape[1]!;
    const heads = ropePermutation(base, module);
    const B = heads === undefined ? b.values : permuteRows(b.values, out, r, heads, true);
    tensors.set(adapterKey(module, embedding ? "lora_embedding_A" : "lora_A"), float32Tensor(A, [r, inFeatures]));
    tensors.set(adapterKey(module, embedding ? "lora_embedding_B" : "lora_B"), float32Tensor(B, [out, r]));
    ranks.set(module, r);
  }
  if (ranks.size === 0) throw bad("holds no lora_a / lora_b tensors");
  const counts = new Map<number, number>();
  for (const r of ranks.values()) counts.set(r, (counts.get(r) ?? 0) + 1);
  const r = [...counts].sort((x, y) => y[1] - x[1] || y[0] - x[0])[0]![0];
  const rankPattern = Object.fromEntries([...ranks].filter(([, rm]) => rm !== r));
  const config = createLoraConfig({
    r,
    lora_alpha: alpha,
    // The modules themselves (PEFT matches a full name to itself only).
    target_modules: [...ranks.keys()],
    rank_pattern: rankPattern,
    fan_in_fan_out: base.config.model_type === "gpt2",
    task_type: "CAUSAL_LM",
    base_model_name_or_path: base.label,
  });
  return { config, tensors };
}
