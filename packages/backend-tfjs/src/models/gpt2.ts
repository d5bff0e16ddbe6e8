import * as tf from "@tensorflow/tfjs";
import type { ModelDescription } from "@lowrank/core";
import type { EmbeddingLayer } from "../layers/embedding-layer.js";
import { activation, attention, attentionBias, layerNorm, mergeHeads, splitHeads } from "../layers/functional.js";
import { LinearLayer } from "../layers/linear-layer.js";
import type { ForwardContext } from "../layers/lora-branch.js";
import type { ParamStore } from "../layers/param-store.js";
import { buildLayers, detectPrefix, requireLayer } from "./build-layers.js";
import { ConfigValues } from "@lowrank/core/internal";
import type { ForwardInput, ForwardOutput, KvCache, TfjsModel } from "./model.js";

interface Gpt2Block {
  ln1: string;
  ln2: string;
  cAttn: LinearLayer;
  attnProj: LinearLayer;
  cFc: LinearLayer;
  mlpProj: LinearLayer;
}

/**
 * GPT-2 (transformers' GPT2LMHeadModel): learned positions, pre-LayerNorm blocks, fused q/k/v in a
 * Conv1D (weights stored input by output), gelu_new, output head tied to the token embedding.
 */
export class Gpt2Model implements TfjsModel {
  readonly task = "causal-lm" as const;
  readonly modelType = "gpt2";
  readonly linears: Map<string, LinearLayer>;
  readonly embeddings: Map<string, EmbeddingLayer>;
  readonly vocabSize: number;
  readonly eosTokenId?: number;
  private readonly prefix: string;
  private readonly blocks: Gpt2Block[] = [];
  private readonly heads: number;
  private readonly hidden: number;
  private readonly eps: number;
  private readonly act: string;
  private readonly scaleByLayer: boolean;
  private readonly lmHead: LinearLayer;

  constructor(
    readonly config: Record<string, unknown>,
    readonly description: ModelDescription,
    readonly store: ParamStore,
    label: string,
  ) {
    const c = new ConfigValues(config, label);
    this.prefix = detectPrefix(store.keys(), ["transformer.", ""], "wte.weight", label);
    ({ linears: this.linears, embeddings: this.embeddings } = buildLayers(description, store));
    this.heads = c.number("n_head");
    this.hidden = c.number("n_embd");
    this.eps = c.number("layer_norm_epsilon", 1e-5);
    this.act = c.string("activation_function", "gelu_new");
    this.scaleByLayer = c.boolean("scale_attn_by_inverse_layer_idx", false);
    this.eosTokenId = c.tokenId("eos_token_id");
    const p = this.prefix;
    const layers = c.number("n_layer");
    for (let i = 0; i < layers; i++) {
      const b = `${p}h.${i}`;
      this.blocks.push({
        ln1: `${b}.ln_1`,
        ln2: `${b}.ln_2`,
        cAttn: requireLayer(this.linears, `${b}.attn.c_attn`, label),
        attnProj: requireLayer(this.linears, `${b}.attn.c_proj`, label),
        cFc: requireLayer(this.linears, `${b}.mlp.c_fc`, label),
        mlpProj: requireLayer(this.linears, `${b}.mlp.c_proj`, label),
      });
    }
    const wte = requireLayer(this.embeddings, `${p}wte`, label);
    this.vocabSize = wte.numEmbeddings;
    this.lmHead = this.linears.get("lm_head") ?? new LinearLayer("lm_head", store, wte.weightKey, undefined, "out_in", this.hidden, this.vocabSize);
  }

  forward(input: ForwardInput, ctx: ForwardContext): ForwardOutput {
    const { inputIds, attentionMask, cache } = input;
    const [batch, seq] = inputIds.shape;
    const past = cache?.length ?? 0;
    const p = this.prefix;
    const headDim = this.hidden / this.heads;
    const positions = input.positionIds
      ? tf.tensor2d(input.positionIds, [batch, seq], "int32")
      : (tf.range(past, past + seq, 1, "int32").reshape([1, seq]) as tf.Tensor2D);
    let h: tf.Tensor = tf.add(
      requireLayer(this.embeddings, `${p}wte`, "gpt2").apply(inputIds, ctx),
      requireLayer(this.embeddings, `${p}wpe`, "gpt2").apply(positions, ctx),
    );
    const bias = attentionBias({ batch, queries: seq, keys: past + seq, causal: true, mask: attentionMask, segments: input.segments });
    const nextCache: KvCache | undefined = cache ? { keys: [], values: [], length: past + seq } : undefined;
    this.blocks.forEach((block, layer) => {
      const a = layerNorm(h, this.store.get(`${block.ln1}.weight`), this.store.get(`${block.ln1}.bias`), this.eps);
      const [q, k, v] = tf.split(block.cAttn.apply(a, ctx), 3, -1).map((t) => splitHeads(t, this.heads, headDim)) as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D];
      let keys = k;
      let values = v;
      if (cache && nextCache) {
        keys = cache.length > 0 ? tf.concat([cache.keys[layer]!, k], 2) : k;
        values = cache.length > 0 ? tf.concat([cache.values[layer]!, v], 2) : v;
        nextCache.keys.push(keys);
        nextCache.values.push(values);
      }
      const scale = 1 / Math.sqrt(headDim) / (this.scaleByLayer ? layer + 1 : 1);
      const attended = mergeHeads(attention(q, keys, values, bias, scale));
      h = tf.add(h, block.attnProj.apply(attended, ctx));
      const m = layerNorm(h, this.store.get(`${block.ln2}.weight`), this.store.get(`${block.ln2}.bias`), this.eps);
      h = tf.add(h, block.mlpProj.apply(activation(this.act, block.cFc.apply(m, ctx)), ctx));
    });
    const last = layerNorm(h, this.store.get(`${p}ln_f.weight`), this.store.get(`${p}ln_f.bias`), this.eps) as tf.Tensor3D;
    return { logits: this.lmHead.apply(last, ctx), lastHiddenState: last, cache: nextCache };
  }
}
