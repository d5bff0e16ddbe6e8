import type * as tf from "@tensorflow/tfjs";
import type { ModelDescription } from "@lowrank/core";
import type { EmbeddingLayer } from "../layers/embedding-layer.js";
import type { LinearLayer } from "../layers/linear-layer.js";
import type { ForwardContext } from "../layers/lora-branch.js";
import type { ParamStore } from "../layers/param-store.js";

/** What a model computes: causal-LM logits, or sequence-classification logits plus hidden states. */
export type ModelTask = "causal-lm" | "seq-cls";

/** Per-layer keys and values kept between generation steps: [b, kvHeads, t, d] each. */
export interface KvCache {
  keys: tf.Tensor4D[];
  values: tf.Tensor4D[];
  /** Tokens already in the cache. */
  length: number;
}

export interface ForwardInput {
  /** [b, s] int32. */
  inputIds: tf.Tensor2D;
  /** Key padding mask (1 = real token) over cached + new tokens, as plain rows; undefined = all ones. */
  attentionMask?: number[][];
  cache?: KvCache;
  /**
   * Packed sequences (core's packExamples; training only, no cache): each token's example and its
   * position in it [b][s]. Attention stays within an example and positions restart in each.
   */
  segments?: number[][];
  positionIds?: number[][];
}

export interface ForwardOutput {
  /** [b, s, vocab] for causal LMs, [b, labels] for sequence classification. */
  logits: tf.Tensor;
  /** [b, s, hidden] (encoders: the encoder's last_hidden_state). */
  lastHiddenState: tf.Tensor3D;
  /** The cache extended with this step (causal LMs, when a cache was passed). */
  cache?: KvCache;
}

/** A Hugging Face architecture running on TensorFlow.js, with its modules by checkpoint name. */
export interface TfjsModel {
  readonly task: ModelTask;
  readonly modelType: string;
  readonly config: Record<string, unknown>;
  readonly description: ModelDescription;
  readonly store: ParamStore;
  readonly linears: ReadonlyMap<string, LinearLayer>;
  readonly embeddings: ReadonlyMap<string, EmbeddingLayer>;
  readonly vocabSize: number;
  /** Token that ends generation, when the config names one. */
  readonly eosTokenId?: number;
  forward(input: ForwardInput, ctx: ForwardContext): ForwardOutput;
}
