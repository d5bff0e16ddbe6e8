import * as tf from "@tensorflow/tfjs";
import { LowrankError, type ModelDescription } from "@lowrank/core";
import type { EmbeddingLayer } from "../layers/embedding-layer.js";
import { activation, layerNorm } from "../layers/functional.js";
import type { LinearLayer } from "../layers/linear-layer.js";
import type { ForwardContext } from "../layers/lora-branch.js";
import { matMul } from "../layers/mat-mul.js";
import type { ParamStore } from "../layers/param-store.js";
import { buildLayers, detectPrefix, requireLayer } from "./build-layers.js";
import { ConfigValues } from "@lowrank/core/internal";
import { disentangledAttention, type DisentangledInputs, type DisentangledProjections } from "./deberta-attention.js";
import type { RelativePositionParams } from "@lowrank/core/internal";
import { pairMask, relativeTableRows } from "./deberta-relative-position.js";
import type { ForwardInput, ForwardOutput, TfjsModel } from "./model.js";

interface DebertaBlock extends DisentangledProjections {
  attnOut: LinearLayer;
  attnNorm: string;
  intermediate: LinearLayer;
  output: LinearLayer;
  outNorm: string;
}

/**
 * PyTorch's Conv1d over the sequence (groups 1, stride 1, zero padding (k − 1)/2 at both ends, odd
 * k): input [b, s, in], weight [out, in, k] → [b, s, out], y[i] = bias + Σₜ W[:, :, t]·x[i + t − pad].
 * One product over k shifted copies of the input (im2col), so every engine has its gradient.
 */
export function convolveSequence(input: tf.Tensor3D, weight: tf.Tensor3D, bias?: tf.Tensor): tf.Tensor3D {
  const [b, s, inFeatures] = input.shape;
  const [outFeatures, , kernel] = weight.shape;
  const pad = (kernel - 1) / 2;
  const padded = tf.pad(input, [
    [0, 0],
    [pad, pad],
    [0, 0],
  ]);
  const columns = tf
    .concat(
      Array.from({ length: kernel }, (_, t) => tf.slice(padded, [0, t, 0], [b, s, inFeatures])),
      -1,
    )
    .reshape([b * s, kernel * inFeatures]) as tf.Tensor2D;
  const byTap = tf.transpose(weight, [2, 1, 0]).reshape([kernel * inFeatures, outFeatures]) as tf.Tensor2D;
  const out = matMul(columns, byTap);
  return (bias ? tf.add(out, bias) : out).reshape([b, s, outFeatures]) as tf.Tensor3D;
}

/** `pos_att_type` as a list (configs write it as a list or as "p2c|c2p"). */
function positionTerms(value: unknown): string[] {
  const list = typeof value === "string" ? value.toLowerCase().split("|") : Array.isArray(value) ? value : [];
  return list.filter((t): t is string => typeof t === "string").map((t) => t.trim());
}

/**
 * DeBERTa-v2 and v3 (transformers' DebertaV2ForSequenceClassification, model_type "deberta-v2"):
 * embeddings → LayerNorm → ×mask; post-LayerNorm blocks with disentangled attention (c2p and/or
 * p2c against a relative-position table with log buckets, LayerNorm'd when norm_rel_ebd says so,
 * projected by the layer's own query_proj / key_proj when share_att_key, else pos_query_proj /
 * pos_key_proj); the convolution after the first layer when conv_kernel_size > 0; ContextPooler
 * (first token → dense → pooler_hidden_act) → classifier.
 */
export class DebertaV2Model implements TfjsModel {
  readonly task = "seq-cls" as const;
  readonly modelType = "deberta-v2";
  readonly linears: Map<string, LinearLayer>;
  readonly embeddings: Map<string, EmbeddingLayer>;
  readonly vocabSize: number;
  private readonly prefix: string;
  private readonly blocks: DebertaBlock[] = [];
  private readonly heads: number;
  private readonly headDim: number;
  private readonly eps: number;
  private readonly act: string;
  private readonly poolerAct: string;
  private readonly c2p: boolean;
  private readonly p2c: boolean;
  private readonly scale: number;
  /** Set when relative_attention is on. */
  private readonly relative?: RelativePositionParams & { normalise: boolean };
  private readonly positionBiased: boolean;
  private readonly conv?: { act: string };

  constructor(
    readonly config: Record<string, unknown>,
    readonly description: ModelDescription,
    readonly store: ParamStore,
    private readonly label: string,
  ) {
    const c = new ConfigValues(config, label);
    this.prefix = detectPrefix(store.keys(), ["deberta.", ""], "embeddings.word_embeddings.weight", label);
    ({ linears: this.linears, embeddings: this.embeddings } = buildLayers(description, store));
    const p = this.prefix;
    this.heads = c.number("num_attention_heads");
    this.headDim = c.number("attention_head_size", Math.floor(c.number("hidden_size") / this.heads));
    this.eps = c.number("layer_norm_eps", 1e-7);
    this.act = c.string("hidden_act", "gelu");
    this.poolerAct = c.string("pooler_hidden_act", "gelu");
    this.positionBiased = c.boolean("position_biased_input", true);
    const terms = positionTerms(config.pos_att_type);
    this.c2p = terms.includes("c2p");
    this.p2c = terms.includes("p2c");
    // transformers counts the position terms in the scale even when relative_attention is off.
    this.scale = Math.sqrt(this.headDim * (1 + Number(this.c2p) + Number(this.p2c)));
    if (c.boolean("relative_attention", false)) {
      const maxRelative = c.number("max_relative_positions", -1);
      const maxPosition = maxRelative < 1 ? c.number("max_position_embeddings") : maxRelative;
      const buckets = c.number("position_buckets", -1);
      const norms = c
        .string("norm_rel_ebd", "none")
        .toLowerCase()
        .split("|")
        .map((x) => x.trim());
      this.relative = { buckets, maxPosition, span: buckets > 0 ? buckets : maxPosition, normalise: norms.includes("layer_norm") };
      const rows = store.get(`${p}encoder.rel_embeddings.weight`).shape[0];
      if (rows < 2 * this.relative.span) {
        throw new LowrankError(
          "CHECKPOINT_INVALID",
          `${label}: encoder.rel_embeddings has ${rows} rows, but \`position_buckets\` / \`max_relative_positions\` need ${2 * this.relative.span}`,
        );
      }
    }
    const kernel = c.number("conv_kernel_size", 0);
    if (kernel > 0) {
      if (kernel % 2 === 0)
        throw new LowrankError(
          "CHECKPOINT_INVALID",
          `${label}: config.json \`conv_kernel_size\` ${kernel} is even; transformers' ConvLayer only keeps the sequence length for odd sizes`,
        );
      const groups = c.number("conv_groups", 1);
      if (groups !== 1)
        throw new LowrankError("CHECKPOINT_INVALID", `${label}: config.json \`conv_groups\` ${groups} is not supported by the tfjs backend (only 1)`);
      this.conv = { act: c.string("conv_act", "tanh") };
      for (const key of [`${p}encoder.conv.conv.weight`, `${p}encoder.conv.LayerNorm.weight`]) {
        if (!store.has(key))
          throw new LowrankError("CHECKPOINT_INVALID", `${label}: config.json \`conv_kernel_size\` is ${kernel} but the checkpoint has no "${key}"`);
      }
    }
    const shareKey = c.boolean("share_att_key", false);
    for (let i = 0; i < c.number("num_hidden_layers"); i++) {
      const b = `${p}encoder.layer.${i}`;
      const get = (name: string) => requireLayer(this.linears, `${b}.${name}`, label);
      this.blocks.push({
        query: get("attention.self.query_proj"),
        key: get("attention.self.key_proj"),
        value: get("attention.self.value_proj"),
        ...(this.relative && !shareKey && this.c2p ? { posKey: get("attention.self.pos_key_proj") } : {}),
        ...(this.relative && !shareKey && this.p2c ? { posQuery: get("attention.self.pos_query_proj") } : {}),
        attnOut: get("attention.output.dense"),
        attnNorm: `${b}.attention.output.LayerNorm`,
        intermediate: get("intermediate.dense"),
        output: get("output.dense"),
        outNorm: `${b}.output.LayerNorm`,
      });
    }
    this.vocabSize = requireLayer(this.embeddings, `${p}embeddings.word_embeddings`, label).numEmbeddings;
    if (!this.linears.has("classifier") || !this.linears.has("pooler.dense")) {
      throw new LowrankError(
        "CHECKPOINT_INVALID",
        `${label}: no pooler.dense and classifier: the tfjs backend runs DeBERTa-v2 as DebertaV2ForSequenceClassification (architectures: ` +
          `${JSON.stringify(config.architectures ?? null)})`,
      );
    }
  }

  private norm(x: tf.Tensor, name: string): tf.Tensor {
    return layerNorm(x, this.store.get(`${name}.weight`), this.store.get(`${name}.bias`), this.eps);
  }

  /** DebertaV2Embeddings: word (+ positions, + token types) → embed_proj → LayerNorm → ×mask. */
  private embed(inputIds: tf.Tensor2D, maskColumn: tf.Tensor | undefined, ctx: ForwardContext): tf.Tensor3D {
    const [, seq] = inputIds.shape;
    const p = this.prefix;
    let h: tf.Tensor = requireLayer(this.embeddings, `${p}embeddings.word_embeddings`, this.label).apply(inputIds, ctx);
    if (this.positionBiased) {
      const positions = tf.range(0, seq, 1, "int32").reshape([1, seq]) as tf.Tensor2D;
      h = tf.add(h, requireLayer(this.embeddings, `${p}embeddings.position_embeddings`, this.label).apply(positions, ctx));
    }
    const tokenType = this.embeddings.get(`${p}embeddings.token_type_embeddings`);
    if (tokenType) h = tf.add(h, tokenType.apply(tf.zeros([1, seq], "int32") as tf.Tensor2D, ctx));
    const project = this.linears.get(`${p}embeddings.embed_proj`);
    if (project) h = project.apply(h, ctx);
    h = this.norm(h, `${p}embeddings.LayerNorm`);
    return (maskColumn ? tf.mul(h, maskColumn) : h) as tf.Tensor3D;
  }

  /** The (normalised) position-table rows for every distance of a `seq`-token input, in both orders. */
  private positionRows(seq: number): Pick<DisentangledInputs, "c2pRows" | "p2cRows"> {
    if (!this.relative || (!this.c2p && !this.p2c)) return {};
    const stored = this.store.get<tf.Tensor2D>(`${this.prefix}encoder.rel_embeddings.weight`);
    const trains = stored instanceof tf.Variable;
    const table = this.relative.normalise ? (this.norm(stored, `${this.prefix}encoder.LayerNorm`) as tf.Tensor2D) : stored;
    const rows = (indices: number[]): tf.Tensor2D => {
      const ids = tf.tensor1d(indices, "int32");
      // gather has no gradient on wasm: a trainable table is read through a one-hot product.
      return trains ? matMul(tf.oneHot(ids, table.shape[0]).toFloat() as tf.Tensor2D, table) : (tf.gather(table, ids) as tf.Tensor2D);
    };
    const { descending, ascending } = relativeTableRows(seq, this.relative);
    return { ...(this.c2p ? { c2pRows: rows(descending) } : {}), ...(this.p2c ? { p2cRows: rows(ascending) } : {}) };
  }

  /**
   * transformers' ConvLayer: the convolution of the encoder input, masked, activation, LayerNorm
   * with the first layer's output, masked again.
   */
  private convolve(input: tf.Tensor3D, residual: tf.Tensor, maskColumn: tf.Tensor | undefined, act: string): tf.Tensor {
    const p = this.prefix;
    const bias = this.store.has(`${p}encoder.conv.conv.bias`) ? this.store.get(`${p}encoder.conv.conv.bias`) : undefined;
    let out: tf.Tensor = convolveSequence(input, this.store.get(`${p}encoder.conv.conv.weight`) as tf.Tensor3D, bias);
    if (maskColumn) out = tf.mul(out, maskColumn);
    const normed = this.norm(tf.add(residual, activation(act, out)), `${p}encoder.conv.LayerNorm`);
    return maskColumn ? tf.mul(normed, maskColumn) : normed;
  }

  /** Encoder output [b, s, hidden] (transformers' last_hidden_state). */
  encode(input: ForwardInput, ctx: ForwardContext): tf.Tensor3D {
    const { inputIds, attentionMask } = input;
    const [batch, seq] = inputIds.shape;
    const maskColumn = attentionMask ? tf.tensor3d(attentionMask.flat(), [batch, seq, 1], "float32") : undefined;
    const embedded = this.embed(inputIds, maskColumn, ctx);
    const shared: DisentangledInputs = {
      heads: this.heads,
      headDim: this.headDim,
      scale: this.scale,
      ctx,
      keep: tf.tensor3d(pairMask(attentionMask, batch, seq), [batch, seq, seq]),
      ...this.positionRows(seq),
    };
    let h: tf.Tensor = embedded;
    this.blocks.forEach((block, i) => {
      const attended = block.attnOut.apply(disentangledAttention(h as tf.Tensor3D, block, shared), ctx);
      const a = this.norm(tf.add(attended, h), block.attnNorm);
      const inner = activation(this.act, block.intermediate.apply(a, ctx));
      h = this.norm(tf.add(block.output.apply(inner, ctx), a), block.outNorm);
      if (i === 0 && this.conv) h = this.convolve(embedded, h, maskColumn, this.conv.act);
    });
    return h as tf.Tensor3D;
  }

  forward(input: ForwardInput, ctx: ForwardContext): ForwardOutput {
    const hidden = this.encode(input, ctx);
    const [batch, , width] = hidden.shape;
    const first = tf.slice(hidden, [0, 0, 0], [batch, 1, width]).reshape([batch, width]);
    const pooled = activation(this.poolerAct, requireLayer(this.linears, "pooler.dense", this.label).apply(first, ctx));
    return { logits: requireLayer(this.linears, "classifier", this.label).apply(pooled, ctx), lastHiddenState: hidden };
  }
}
