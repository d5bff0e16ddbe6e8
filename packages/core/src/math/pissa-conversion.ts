import type { LoraAdapter } from "../adapter/lora-adapter.js";
import { adapterKey } from "../adapter/adapter-keys.js";
import { float32Tensor, toFloat32 } from "../formats/safetensors/dtype.js";

/**
 * PiSSA / OLoRA start from the base weight's own directions and train against the residual base
 * W − scaling·B₀·A₀. Saved like that, the adapter would only fit the residual; like PEFT's
 * `path_initial_model_for_weight_conversion` (and the tfjs trainer's export) it is rewritten to fit
 * the original base: A′ = [A; A₀], B′ = [B, −B₀], rank doubled and alpha doubled (×√2 with rsLoRA)
 * so the scaling holds, `init_lora_weights` true. Training checkpoints keep the adapter as trained.
 * Both backends' trainers save PiSSA / OLoRA adapters through this.
 */
export function convertToPlainLora(adapter: LoraAdapter, initial: ReadonlyMap<string, { A: Float32Array; B: Float32Array }>): LoraAdapter {
  if (initial.size === 0) return adapter;
  const tensors = new Map(adapter.tensors);
  for (const [module, start] of initial) {
    const aKey = adapterKey(module, "lora_A");
    const bKey = adapterKey(module, "lora_B");
    const [r, inn] = tensors.get(aKey)!.shape as [number, number];
    const out = tensors.get(bKey)!.shape[0]!;
    const A = toFloat32(tensors.get(aKey)!);
    const B = toFloat32(tensors.get(bKey)!);
    const a2 = new Float32Array(2 * r * inn);
    a2.set(A);
    a2.set(start.A, r * inn);
    const b2 = new Float32Array(out * 2 * r);
    for (let o = 0; o < out; o++) {
      for (let k = 0; k < r; k++) {
        b2[o * 2 * r + k] = B[o * r + k]!;
        b2[o * 2 * r + r + k] = -start.B[o * r + k]!;
      }
    }
    tensors.set(aKey, float32Tensor(a2, [2 * r, inn]));
    tensors.set(bKey, float32Tensor(b2, [out, 2 * r]));
  }
  const c = adapter.config;
  const alphaFactor = c.use_rslora ? Math.SQRT2 : 2;
  const scaled = (p: Record<string, number>, f: number) => Object.fromEntries(Object.entries(p).map(([k, v]) => [k, v * f]));
  return {
    config: {
      ...c,
      r: 2 * c.r,
      lora_alpha: c.lora_alpha * alphaFactor,
      rank_pattern: scaled(c.rank_pattern, 2),
      alpha_pattern: scaled(c.alpha_pattern, alphaFactor),
      init_lora_weights: true,
    },
    tensors,
  };
}
