import { adapterKey } from "../adapter/adapter-keys.js";
import type { LoraAdapter } from "../adapter/lora-adapter.js";
import { collectLoraModules } from "../adapter/lora-modules.js";
import { createLoraConfig } from "../config/lora-config.js";
import { LowrankError } from "../errors/lowrank-error.js";
import { float32Tensor, toFloat32, type Tensor } from "../formats/safetensors/dtype.js";
import { transpose } from "../math/low-rank-update.js";
import type { ConversionBase } from "./gguf-lora.js";

/** mlx-lm's adapter folder: adapters.safetensors and adapter_config.json. */
export interface MlxAdapter {
  config: { fine_tune_type: "lora"; num_layers: number; lora_parameters: { rank: number; scale: number; dropout: number; keys: string[] } };
  tensors: Map<string, Tensor>;
}

const BLOCK = /^(?:(.*)\.)?(layers|h)\.(\d+)\.(.+)$/;

/** mlx-lm's path of a Hugging Face module: GPT-2's `transformer.` is mlx-lm's `model.`; the LLaMA family's names are the same. */
function mlxPath(module: string): string {
  const m = BLOCK.exec(module);
  if (!m) throw new LowrankError("USAGE", `LoRA on "${module}": mlx-lm puts LoRA on the modules inside the layers only`);
  return `${m[1] === "transformer" || m[1] === undefined ? "model" : m[1]}.${m[2]}.${m[3]}.${m[4]}`;
}

function layerCount(base: ConversionBase): number {
  const n = base.config.num_hidden_layers ?? base.config.n_layer;
  if (typeof n !== "number") throw new LowrankError("CHECKPOINT_INVALID", `${base.label}: config.json has no num_hidden_layers / n_layer`);
  return n;
}

/**
 * A PEFT adapter as mlx-lm's: `<module>.lora_a` = Aᵀ [in, r] and `.lora_b` = Bᵀ [r, out], one absolute
 * `scale` (the most common module scaling; any other module's ratio folded into its lora_b), `keys`
 * the adapted block-relative modules, `num_layers` reaching back to the first adapted layer (mlx-lm
 * adapts the last N; layers it adapts without factors keep lora_b = 0, no change).
 * @throws LowrankError USAGE for what mlx-lm's LoRA cannot hold (DoRA, lora_B's bias, embeddings,
 *   modules_to_save or trained biases).
 */
export function peftToMlx(adapter: LoraAdapter, base: ConversionBase, label = "adapter"): MlxAdapter {
  const { modules, replacements } = collectLoraModules(adapter, label);
  const refuse = (what: string) => new LowrankError("USAGE", `${label}: ${what} cannot be written as an mlx-lm LoRA adapter`);
  if (replacements.size > 0) throw refuse(`whole tensors (modules_to_save or trained biases: ${[...replacements.keys()].slice(0, 3).join(", ")})`);
  const counts = new Map<number, number>();
  for (const m of modules.values()) counts.set(m.scaling, (counts.get(m.scaling) ?? 0) + 1);
  const scale = [...counts].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 1;
  const tensors = new Map<string, Tensor>();
  const keys = new Set<string>();
  let first = Number.POSITIVE_INFINITY;
  for (const m of modules.values()) {
    if (m.magnitude) throw refuse(`DoRA (${m.name})`);
    if (m.loraBias) throw refuse(`lora_B's bias (lora_bias, ${m.name})`);
    if (m.embedding) throw refuse(`LoRA on the embedding "${m.name}"`);
    const path = mlxPath(m.name);
    const [, , , layer, relative] = BLOCK.exec(path)!;
    first = Math.min(first, Number(layer));
    keys.add(relative!);
    const fold = m.scaling / scale;
    tensors.set(`${path}.lora_a`, float32Tensor(transpose(m.A, m.r, m.inFeatures), [m.inFeatures, m.r]));
    tensors.set(`${path}.lora_b`, float32Tensor(transpose(fold === 1 ? m.B : m.B.map((v) => v * fold), m.outFeatures, m.r), [m.r, m.outFeatures]));
  }
  const layers = layerCount(base);
  return {
    config: {
      fine_tune_type: "lora",
      num_layers: layers - first,
      lora_parameters: { rank: adapter.config.r, scale, dropout: adapter.config.lora_dropout, keys: [...keys].sort() },
    },
    tensors,
  };
}

/**
 * mlx-lm's adapter back as PEFT's for `base`: each `<path>.lora_a/lora_b` to its Hugging Face module,
 * A = lora_aᵀ, B = lora_bᵀ; mlx-lm's scale as lora_alpha = scale · r (an alpha_pattern and rank_pattern
 * for modules of another rank), so PEFT's scaling is mlx-lm's.
 * @throws LowrankError CHECKPOINT_INVALID for another fine_tune_type, a tensor without its pair or module.
 */
export function mlxToPeft(mlx: { config: Record<string, unknown>; tensors: Map<string, Tensor> }, base: ConversionBase, label: string): LoraAdapter {
  const bad = (why: string) => new LowrankError("CHECKPOINT_INVALID", `${label}: ${why}`);
  const type = mlx.config.fine_tune_type ?? "lora";
  if (type !== "lora") throw bad(`fine_tune_type is "${String(type)}"; lowrank converts mlx-lm's "lora" adapters`);
  const params = mlx.config.lora_parameters as { scale?: unknown } | undefined;
  const scale = params?.scale;
  if (typeof scale !== "number" || !(scale > 0)) throw bad("adapter_config.json has no positive lora_parameters.scale");
  const byMlx = new Map(base.description.modules.flatMap((m) => (BLOCK.test(m.name) ? [[mlxPath(m.name), m.name] as const] : [])));
  const tensors = new Map<string, Tensor>();
  const ranks = new Map<string, number>();
  for (const [key, a] of mlx.tensors) {
    if (!key.endsWith(".lora_a")) {
      if (!key.endsWith(".lora_b")) throw bad(`tensor "${key}" is not a lora_a / lora_b`);
      continue;
    }
    const path = key.slice(0, -".lora_a".length);
    const b = mlx.tensors.get(`${path}.lora_b`);
    const module = byMlx.get(path);
    if (!b) throw bad(`"${key}" has no ${path}.lora_b`);
    if (!module) throw bad(`"${path}" is no module of ${base.label}`);
    const [inFeatures, r] = a.shape as [number, number];
    const out = b.shape[1]!;
    tensors.set(adapterKey(module, "lora_A"), float32Tensor(transpose(toFloat32(a, key), inFeatures, r), [r, inFeatures]));
    tensors.set(adapterKey(module, "lora_B"), float32Tensor(transpose(toFloat32(b, `${path}.lora_b`), r, out), [out, r]));
    ranks.set(module, r);
  }
  if (ranks.size === 0) throw bad("holds no lora_a / lora_b tensors");
  const counts = new Map<number, number>();
  for (const r of ranks.values()) counts.set(r, (counts.get(r) ?? 0) + 1);
  const r = [...counts].sort((x, y) => y[1] - x[1] || y[0] - x[0])[0]![0];
  const others = [...ranks].filter(([, rm]) => rm !== r);
  const config = createLoraConfig({
    r,
    lora_alpha: scale * r,
    rank_pattern: Object.fromEntries(others),
    alpha_pattern: Object.fromEntries(others.map(([m, rm]) => [m, scale * rm])),
    lora_dropout: typeof (params as { dropout?: unknown }).dropout === "number" ? ((params as { dropout: number }).dropout as number) : 0,
    target_modules: [...ranks.keys()],
    fan_in_fan_out: base.config.model_type === "gpt2",
    task_type: "CAUSAL_LM",
    base_model_name_or_path: base.label,
  });
  return { config, tensors };
}
