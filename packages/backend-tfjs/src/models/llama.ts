import * as tf from "@tensorflow/tfjs";
import type { ModelDescription } from "@lowrank/core";
import { attentionWindow, ropeFrequencies, type RopeScaling } from "@lowrank/core/internal";
import type { EmbeddingLayer } from "../layers/embedding-layer.js";
import { activation, attention, attentionBias, mergeHeads, rmsNorm, splitHeads } from "../layers/functional.js";
import { LinearLayer } from "../layers/linear-layer.js";
import type { ForwardContext } from "../layers/lora-branch.js";
import type { ParamStore } from "../layers/param-store.js";
import { buildLayers, detectPrefix, requireLayer } from "./build-layers.js";
import { ConfigValues } from "./config-values.js";
import type { ForwardInput, ForwardOutput, KvCache, TfjsModel } from "./model.js";
import { applyRope, ropeTables } from "./rope.js";

interface LlamaBlock {
  inputNorm: string;
  postNorm: string;
  q: LinearLayer;
  k: LinearLayer;
  v: LinearLayer;
  o: LinearLayer;
  gate: LinearLayer;
  up: LinearLayer;
  down: LinearLayer;
}

/** [b, kvHeads, t, d] → [b, kvHeads·rep, t, d], each key/value head repeated for its query group. */
function repeatKv(x: tf.Tensor4D, rep: number): tf.Tensor4D {
  if (rep === 1) return x;
  const [b, h, t, d] = x.shape;
  // Rank 3, not 5: tfjs has no tile gradient above rank 4, and LoRA on q/k/v trains through this.
  return tf.tile(x.reshape([b * h, 1, t * d]), [1, rep, 1]).reshape([b, h * rep, t, d]) as tf.Tensor4D;
}

/**
 * The LLaMA family (llama, mistral, qwen2): RMSNorm, rotary positions (rope_theta, linear and llama3
 * scaling), grouped-query attention (within Mistral's sliding window), SwiGLU MLP; q/k/v biases when
 * the checkpoint has them (qwen2).
 */
export class LlamaModel implements TfjsModel {
  readonly task = "causal-lm" as const;
  readonly linears: Map<string, LinearLayer>;
  readonly embeddings: Map<string, EmbeddingLayer>;
  readonly vocabSize: number;
  readonly eosTokenId?: number;
  private readonly prefix: string;
  private readonly blocks: LlamaBlock[] = [];
  private readonly heads: number;
  private readonly kvHeads: number;
  private readonly headDim: number;
  private readonly eps: number;
  private readonly act: string;
  private readonly inv: Float64Array;
  private readonly positionScale: number;
  private readonly lmHead: LinearLayer;
  /** Mistral's sliding window (keys within this many positions of the query), if any. */
  private readonly window: number | undefined;

  constructor(
    readonly config: Record<string, unknown>,
    readonly description: ModelDescription,
    readonly store: ParamStore,
    label: string,
    readonly modelType: string,
  ) {
    const c = new ConfigValues(config, label);
    this.prefix = detectPrefix(store.keys(), ["model.", ""], "embed_tokens.weight", label);
    ({ linears: this.linears, embeddings: this.embeddings } = buildLayers(description, store));
    const hidden = c.number("hidden_size");
    this.heads = c.number("num_attention_heads");
    this.kvHeads = c.number("num_key_value_heads", this.heads);
    this.headDim = c.number("head_dim", hidden / this.heads);
    this.eps = c.number("rms_norm_eps", 1e-6);
    this.act = c.string("hidden_act", "silu");
    this.eosTokenId = c.tokenId("eos_token_id");
    this.window = attentionWindow({ ...config, model_type: modelType }, label);
    const scaling = (config.rope_scaling ?? null) as RopeScaling | null;
    ({ inv: this.inv, positionScale: this.positionScale } = ropeFrequencies(this.headDim, c.number("rope_theta", 10000), scaling, `${label}/config.json`));
    const p = this.prefix;
    for (let i = 0; i < c.number("num_hidden_layers"); i++) {
      const b = `${p}layers.${i}`;
      const get = (name: string) => requireLayer(this.linears, `${b}.${name}`, label);
      this.blocks.push({
        inputNorm: `${b}.input_layernorm.weight`,
        postNorm: `${b}.post_attention_layernorm.weight`,
        q: get("self_attn.q_proj"),
        k: get("self_attn.k_proj"),
        v: get("self_attn.v_proj"),
        o: get("self_attn.o_proj"),
        gate: get("mlp.gate_proj"),
        up: get("mlp.up_proj"),
        down: get("mlp.down_proj"),
      });
    }
    const embed = requireLayer(this.embeddings, `${p}embed_tokens`, label);
    this.vocabSize = embed.numEmbeddings;
    this.lmHead = this.linears.get("lm_head") ?? new LinearLayer("lm_head", store, embed.weightKey, undefined, "out_in", hidden, this.vocabSize);
  }

  forward(input: ForwardInput, ctx: ForwardContext): ForwardOutput {
    const { inputIds, attentionMask, cache } = input;
    const [batch, seq] = inputIds.shape;
    const past = cache?.length ?? 0;
    let h: tf.Tensor = requireLayer(this.embeddings, `${this.prefix}embed_tokens`, "llama").apply(inputIds, ctx);
    const bias = attentionBias({ batch, queries: seq, keys: past + seq, causal: true, mask: attentionMask, window: this.window });
    const { cos, sin } = ropeTables(this.inv, past, seq, this.positionScale);
    const rep = this.heads / this.kvHeads;
    const scale = 1 / Math.sqrt(this.headDim);
    const nextCache: KvCache | undefined = cache ? { keys: [], values: [], length: past + seq } : undefined;
    this.blocks.forEach((block, layer) => {
      const x = rmsNorm(h, this.store.get(block.inputNorm), this.eps);
      const q = applyRope(splitHeads(block.q.apply(x, ctx), this.heads, this.headDim), cos, sin);
      let k = applyRope(splitHeads(block.k.apply(x, ctx), this.kvHeads, this.headDim), cos, sin);
      let v = splitHeads(block.v.apply(x, ctx), this.kvHeads, this.headDim);
      if (cache && nextCache) {
        if (cache.length > 0) {
          k = tf.concat([cache.keys[layer]!, k], 2);
          v = tf.concat([cache.values[layer]!, v], 2);
        }
        nextCache.keys.push(k);
        nextCache.values.push(v);
      }
      const attended = mergeHeads(attention(q, repeatKv(k, rep), repeatKv(v, rep), bias, scale));
      h = tf.add(h, block.o.apply(attended, ctx));
      const m = rmsNorm(h, this.store.get(block.postNorm), this.eps);
      h = tf.add(h, block.down.apply(tf.mul(activation(this.act, block.gate.apply(m, ctx)), block.up.apply(m, ctx)), ctx));
    });
    const last = rmsNorm(h, this.store.get(`${this.prefix}norm.weight`), this.eps) as tf.Tensor3D;
    return { logits: this.lmHead.apply(last, ctx), lastHiddenState: last, cache: nextCache };
  }
}
