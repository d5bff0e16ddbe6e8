import type { DType } from "../formats/safetensors/dtype.js";

/** What kind of layer a module is, as far as LoRA cares. */
export type ModuleKind = "linear" | "conv1d" | "embedding" | "conv2d" | "norm" | "container" | "other";

/**
 * How a 2-D weight is stored relative to LoRA's in/out features: `out_in` (nn.Linear) or `in_out`
 * (GPT-2's Conv1D, and an embedding [num_embeddings, dim] read as a map from vocabulary to hidden).
 */
export type WeightLayout = "out_in" | "in_out";

/** One module of a model, described without any backend (the module tree PEFT walks). */
export interface ModuleInfo {
  /** Dotted path, as in PyTorch's named_modules() (e.g. "transformer.h.0.attn.c_attn"). */
  name: string;
  kind: ModuleKind;
  /** Input features (linear, conv1d) or number of embeddings (embedding). */
  inFeatures?: number;
  /** Output features (linear, conv1d) or embedding dimension (embedding). */
  outFeatures?: number;
  /** Checkpoint key of the weight; for a tied head, the key of the weight it shares. */
  weightKey?: string;
  biasKey?: string;
  layout?: WeightLayout;
  /** Index in the repeated-layers container (the N of "h.N" or "layers.N"), when inside one. */
  layerIndex?: number;
  /** True for the output projection to the vocabulary ("lm_head"). */
  isOutputHead?: boolean;
  /** Set when the weight is shared with another module (a tied lm_head). */
  tiedTo?: string;
}

export interface TensorInfo {
  dtype: DType;
  shape: number[];
}

/** A checkpoint's module tree plus its tensors, enough to target and merge LoRA without a backend. */
export interface ModelDescription {
  modelType: string | undefined;
  architectures: string[];
  /** Modules in PyTorch named_modules() order: parents before children, root ("") excluded. */
  modules: ModuleInfo[];
  byName: ReadonlyMap<string, ModuleInfo>;
  tensors: ReadonlyMap<string, TensorInfo>;
  /** Name of the output head module, if the model has one. */
  outputHead: string | undefined;
  /** Raw config.json. */
  config: Record<string, unknown>;
}
