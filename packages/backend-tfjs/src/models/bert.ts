import * as tf from "@tensorflow/tfjs";
import type { ModelDescription } from "@lowrank/core";
import type { EmbeddingLayer } from "../layers/embedding-layer.js";
import { activation, attention, attentionBias, layerNorm, mergeHeads, splitHeads } from "../layers/functional.js";
import type { LinearLayer } from "../layers/linear-layer.js";
import type { ForwardContext } from "../layers/lora-branch.js";
import type { ParamStore } from "../layers/param-store.js";
import { buildLayers, detectPrefix, requireLayer } from "./build-layers.js";
import { ConfigValues } from "@lowrank/core/internal";
import type { ForwardInput, ForwardOutput, TfjsModel } from "./model.js";

interface EncoderBlock {
  query: LinearLayer;
  key: LinearLayer;
  value: LinearLayer;
  attnOut: LinearLayer;
  attnNorm: string;
  intermediate: LinearLayer;
  output: LinearLayer;
  outNorm: string;
}

/**
 * RoBERTa position ids: non-padding tokens numbered from padding_idx + 1, padding at padding_idx
 * (transformers' create_position_ids_from_input_ids). Computed on the CPU: no gradient needed.
 */
export function robertaPositionIds(ids: number[][], paddingIdx: number): number[][] {
  return ids.map((row) => {
    let count = 0;
    return row.map((id) => (id === paddingIdx ? paddingIdx : paddingIdx + ++count));
  });
}

/**
 * BERT and RoBERTa encoders (bert, roberta, xlm-roberta) with their sequence-classification heads:
 * RoBERTa's classifier.dense → tanh → classifier.out_proj on the first token, or BERT's pooler →
 * classifier. Post-LayerNorm blocks, exact-erf gelu, additive padding mask.
 */
export class BertModel implements TfjsModel {
  readonly task = "seq-cls" as const;
  readonly linears: Map<string, LinearLayer>;
  readonly embeddings: Map<string, EmbeddingLayer>;
  readonly vocabSize: number;
  private readonly prefix: string;
  private readonly blocks: EncoderBlock[] = [];
  private readonly heads: number;
  private readonly hidden: number;
  private readonly eps: number;
  private readonly act: string;
  private readonly padId: number;
  private readonly isRoberta: boolean;

  constructor(
    readonly config: Record<string, unknown>,
    readonly description: ModelDescription,
    readonly store: ParamStore,
    private readonly label: string,
    readonly modelType: string,
  ) {
    const c = new ConfigValues(config, label);
    this.prefix = detectPrefix(store.keys(), ["roberta.", "bert.", ""], "embeddings.word_embeddings.weight", label);
    ({ linears: this.linears, embeddings: this.embeddings } = buildLayers(description, store));
    this.hidden = c.number("hidden_size");
    this.heads = c.number("num_attention_heads");
    this.eps = c.number("layer_norm_eps", 1e-12);
    this.act = c.string("hidden_act", "gelu");
    this.padId = c.number("pad_token_id", modelType === "bert" ? 0 : 1);
    this.isRoberta = modelType !== "bert";
    const p = this.prefix;
    for (let i = 0; i < c.number("num_hidden_layers"); i++) {
      const b = `${p}encoder.layer.${i}`;
      const get = (name: string) => requireLayer(this.linears, `${b}.${name}`, label);
      this.blocks.push({
        query: get("attention.self.query"),
        key: get("attention.self.key"),
        value: get("attention.self.value"),
        attnOut: get("attention.output.dense"),
        attnNorm: `${b}.attention.output.LayerNorm`,
        intermediate: get("intermediate.dense"),
        output: get("output.dense"),
        outNorm: `${b}.output.LayerNorm`,
      });
    }
    this.vocabSize = requireLayer(this.embeddings, `${p}embeddings.word_embeddings`, label).numEmbeddings;
  }

  /** Encoder output [b, s, hidden]. */
  encode(input: ForwardInput, ctx: ForwardContext): tf.Tensor3D {
    const { inputIds, attentionMask } = input;
    const [batch, seq] = inputIds.shape;
    const p = this.prefix;
    const rows = inputIds.arraySync() as number[][];
    const positions = this.isRoberta ? robertaPositionIds(rows, this.padId) : rows.map((r) => r.map((_, j) => j));
    let h: tf.Tensor = tf.add(
      requireLayer(this.embeddings, `${p}embeddings.word_embeddings`, this.label).apply(inputIds, ctx),
      requireLayer(this.embeddings, `${p}embeddings.position_embeddings`, this.label).apply(tf.tensor2d(positions, [batch, seq], "int32"), ctx),
    );
    const tokenType = this.embeddings.get(`${p}embeddings.token_type_embeddings`);
    if (tokenType) h = tf.add(h, tokenType.apply(tf.zeros([1, seq], "int32") as tf.Tensor2D, ctx));
    h = layerNorm(h, this.store.get(`${p}embeddings.LayerNorm.weight`), this.store.get(`${p}embeddings.LayerNorm.bias`), this.eps);
    const bias = attentionMask ? attentionBias({ batch, queries: seq, keys: seq, causal: false, mask: attentionMask }) : undefined;
    const headDim = this.hidden / this.heads;
    for (const block of this.blocks) {
      const q = splitHeads(block.query.apply(h, ctx), this.heads, headDim);
      const k = splitHeads(block.key.apply(h, ctx), this.heads, headDim);
      const v = splitHeads(block.value.apply(h, ctx), this.heads, headDim);
      const attended = block.attnOut.apply(mergeHeads(attention(q, k, v, bias, 1 / Math.sqrt(headDim))), ctx);
      h = layerNorm(tf.add(attended, h), this.store.get(`${block.attnNorm}.weight`), this.store.get(`${block.attnNorm}.bias`), this.eps);
      const inner = activation(this.act, block.intermediate.apply(h, ctx));
      h = layerNorm(tf.add(block.output.apply(inner, ctx), h), this.store.get(`${block.outNorm}.weight`), this.store.get(`${block.outNorm}.bias`), this.eps);
    }
    return h as tf.Tensor3D;
  }

  forward(input: ForwardInput, ctx: ForwardContext): ForwardOutput {
    const hidden = this.encode(input, ctx);
    const [batch] = hidden.shape;
    const first = tf.slice(hidden, [0, 0, 0], [batch, 1, this.hidden]).reshape([batch, this.hidden]);
    let logits: tf.Tensor;
    const robertaHead = this.linears.get("classifier.dense");
    if (robertaHead) {
      logits = requireLayer(this.linears, "classifier.out_proj", this.label).apply(tf.tanh(robertaHead.apply(first, ctx)), ctx);
    } else {
      const pooled = tf.tanh(requireLayer(this.linears, `${this.prefix}pooler.dense`, this.label).apply(first, ctx));
      logits = requireLayer(this.linears, "classifier", this.label).apply(pooled, ctx);
    }
    return { logits, lastHiddenState: hidden };
  }
}
