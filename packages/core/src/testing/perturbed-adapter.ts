import type { LoraAdapter } from "../adapter/lora-adapter.js";
import { float32Tensor, toFloat32, type Tensor } from "../formats/safetensors/dtype.js";
import { SeededRandom } from "../math/random.js";

/**
 * A second adapter for the same base, for multi-adapter tests: the modules whose name contains
 * `only` (every module when absent), lora_alpha = r (scaling 1), and each factor's values reversed
 * and multiplied by random factors in ±[0.5, 1.5).
 */
export function perturbedAdapter(source: LoraAdapter, options: { seed: number; only?: string }): LoraAdapter {
  const rng = new SeededRandom(options.seed);
  const tensors = new Map<string, Tensor>();
  for (const [key, t] of source.tensors) {
    if (options.only !== undefined && !key.includes(options.only)) continue;
    const values = toFloat32(t).map((x) => x * (0.5 + rng.next()) * (rng.next() < 0.5 ? -1 : 1));
    tensors.set(key, float32Tensor(values.reverse(), t.shape));
  }
  const targets = options.only === undefined ? source.config.target_modules : [options.only];
  return {
    config: { ...source.config, lora_alpha: source.config.r, target_modules: targets, rank_pattern: {}, alpha_pattern: {}, modules_to_save: null },
    tensors,
  };
}
