import * as tf from "@tensorflow/tfjs";
import { Checkpoint, describeModel, LowrankError, type ModelDescription } from "@lowrank/core";
import { ParamStore } from "../layers/param-store.js";
import { BertModel } from "./bert.js";
import { DebertaV2Model } from "./deberta-v2.js";
import { Gpt2Model } from "./gpt2.js";
import { LlamaModel } from "./llama.js";
import type { TfjsModel } from "./model.js";

type Builder = (config: Record<string, unknown>, description: ModelDescription, store: ParamStore, label: string, modelType: string) => TfjsModel;

/** Architectures by config.json `model_type`. */
const ARCHITECTURES: Readonly<Record<string, Builder>> = {
  gpt2: (c, d, s, l) => new Gpt2Model(c, d, s, l),
  llama: (c, d, s, l, t) => new LlamaModel(c, d, s, l, t),
  mistral: (c, d, s, l, t) => new LlamaModel(c, d, s, l, t),
  qwen2: (c, d, s, l, t) => new LlamaModel(c, d, s, l, t),
  phi3: (c, d, s, l, t) => new LlamaModel(c, d, s, l, t),
  gemma: (c, d, s, l, t) => new LlamaModel(c, d, s, l, t),
  gemma2: (c, d, s, l, t) => new LlamaModel(c, d, s, l, t),
  bert: (c, d, s, l, t) => new BertModel(c, d, s, l, t),
  roberta: (c, d, s, l, t) => new BertModel(c, d, s, l, t),
  "xlm-roberta": (c, d, s, l, t) => new BertModel(c, d, s, l, t),
  // DeBERTa-v3 checkpoints use this model_type too.
  "deberta-v2": (c, d, s, l) => new DebertaV2Model(c, d, s, l),
};

export const SUPPORTED_MODEL_TYPES = Object.keys(ARCHITECTURES);

/**
 * Loads a Hugging Face checkpoint folder (config.json + safetensors, sharded or not) onto the active
 * TensorFlow.js backend: every floating-point tensor becomes a frozen float32 tensor (F16/BF16
 * widened), and the architecture is chosen by `model_type`.
 * @throws LowrankError CHECKPOINT_INVALID for an unsupported model type or a missing tensor.
 */
export async function loadModel(dir: string): Promise<TfjsModel> {
  const checkpoint = await Checkpoint.open(dir);
  const store = new ParamStore(dir);
  try {
    const modelType = typeof checkpoint.config.model_type === "string" ? checkpoint.config.model_type : "";
    const build = ARCHITECTURES[modelType];
    if (!build) {
      throw new LowrankError(
        "CHECKPOINT_INVALID",
        `${dir}: model_type ${JSON.stringify(modelType)} is not supported by the tfjs backend (supported: ${SUPPORTED_MODEL_TYPES.join(", ")})`,
      );
    }
    const info = checkpoint.tensorInfo();
    for (const [name, t] of info) {
      if (!["F32", "F16", "BF16", "F64"].includes(t.dtype)) continue;
      store.set(name, tf.tensor(await checkpoint.readFloat32(name), t.shape, "float32"));
    }
    return build(checkpoint.config, describeModel(checkpoint.config, info), store, dir, modelType);
  } catch (error) {
    store.dispose();
    throw error;
  } finally {
    await checkpoint.close();
  }
}
