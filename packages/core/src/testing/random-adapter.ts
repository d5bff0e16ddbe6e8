import { adapterKey } from "../adapter/adapter-keys.js";
import type { LoraAdapter } from "../adapter/lora-adapter.js";
import { createLoraConfig, type LoraConfigInput } from "../config/lora-config.js";
import { Checkpoint } from "../formats/checkpoint.js";
import { float32Tensor, type Tensor } from "../formats/safetensors/dtype.js";
import { SeededRandom } from "../math/random.js";
import { describeModel } from "../model/describe-model.js";
import { resolveTargets } from "../targeting/resolve-targets.js";

/**
 * An adapter for the model in `modelDir` with random (non-zero) A and B, uniform in ±`scale`, so
 * that an unmerged adapter does real work and a merge changes every targeted weight.
 */
export async function randomAdapter(modelDir: string, input: LoraConfigInput, seed = 2, scale = 0.05): Promise<LoraAdapter> {
  const checkpoint = await Checkpoint.open(modelDir);
  try {
    const config = createLoraConfig(input);
    const report = resolveTargets(config, describeModel(checkpoint.config, checkpoint.tensorInfo()));
    const rng = new SeededRandom(seed);
    const random = (n: number) => Float32Array.from({ length: n }, () => (rng.next() * 2 - 1) * scale);
    const tensors = new Map<string, Tensor>();
    for (const plan of report.targets) {
      const embedding = plan.kind === "embedding";
      tensors.set(adapterKey(plan.name, embedding ? "lora_embedding_A" : "lora_A"), float32Tensor(random(plan.r * plan.inFeatures), [plan.r, plan.inFeatures]));
      tensors.set(
        adapterKey(plan.name, embedding ? "lora_embedding_B" : "lora_B"),
        float32Tensor(random(plan.outFeatures * plan.r), [plan.outFeatures, plan.r]),
      );
    }
    return { config, tensors };
  } finally {
    await checkpoint.close();
  }
}
