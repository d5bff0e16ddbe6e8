// Inputs shared by the SIGKILL tests and their child processes.
import { createLoraConfig, float32Tensor } from "@lowrank/core";
import { adapterKey } from "@lowrank/core/internal";

/** Two distinguishable adapters (256 KB of weights each): version k holds the value k + 1 everywhere, lora_alpha 8 + k. */
export function adapterVersion(k) {
  const n = 65_536;
  const values = new Float32Array(n).fill(k + 1);
  return {
    config: createLoraConfig({ r: 8, lora_alpha: 8 + k, target_modules: ["q_proj"] }),
    tensors: new Map([
      [adapterKey("model.layers.0.self_attn.q_proj", "lora_A"), float32Tensor(values, [8, n / 8])],
      [adapterKey("model.layers.0.self_attn.q_proj", "lora_B"), float32Tensor(values, [n / 8, 8])],
    ]),
  };
}
