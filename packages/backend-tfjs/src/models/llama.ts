import * as tf from "@tensorflow/tfjs";
import type { ModelDescription } from "@lowrank/core";
import { ConfigValues, decoderOptions, ropeFrequencies, type DecoderOptions } from "@lowrank/core/internal";
import type { EmbeddingLayer } from "../layers/embedding-layer.js";
import { activation, attention, attentionBias, mergeHeads, rmsNorm, splitHeads } from "../layers/functional.js";
import { LinearLayer } from "../layers/linear-layer.js";
import type { ForwardContext } from "../layers/lora-branch.js";
import type { ParamStore } from "../layers/param-store.js";
import { buildLayers, detectPrefix, requireLayer } from "./build-layers.js";
import { buildDecoderBlock, type DecoderBlock } from "./decoder-block.js";
import type { ForwardInput, ForwardOutput, KvCache, TfjsModel } from "./model.js";
import { applyRope, ropeTables, ropeTablesAt } from "./rope.js";
import { softCap, softCappedAttention } from "./soft-cap.js";

/** [b, kvHeads, t, d] → [b, kvHeads·rep, t, d], each key/value head repeated for its query group. */
function repeatKv(x: tf.Tensor4D, rep: number): tf.Tensor4D {
  if (rep === 1) return x;
  const [b, h, t, d] = x.shape;
  // Rank 3, not 5: tfjs has no tile gradient above rank 4, and LoRA on q/k/v trains through this.
  return tf.tile(x.reshape([b * h, 1, t * d]), [1, rep, 1]).reshape([b, h * rep, t, d]) as tf.Tensor4D;
}

/**
 * The LLaMA family and its relatives: RMSNorm, rotary positions (rope_theta, linear and llama3
 * scaling), grouped-query attention, gated MLP; q/k/v biases when the checkpoint has them (qwen2);
 * Mistral's sliding window; Phi-3's fused qkv_proj / gate_up_proj; Gemma's scaled embeddings,
 * x·(1 + w) norms and GeGLU; Gemma-2's soft caps, query_pre_attn_scalar, sliding window on even
 * layers and extra norms (see decoder-options.ts).
 */
export class LlamaModel implements TfjsModel {
  readonly task = "causal-lm" as const;
  readonly linears: Map<string, LinearLayer>;
  readonly embeddings: Map<string, EmbeddingLayer>;
  readonly vocabSize: number;
  readonly eosTokenId?: number;
  private readonly prefix: string;
  private readonly blocks: DecoderBlock[] = [];
  private readonly options: DecoderOptions;
  private readonly inv: Float64Array;
  private readonly positionScale: number;
  private readonly lmHead: LinearLayer;

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
    const o = decoderOptions(modelType, config, c, label);
    this.options = o;
    this.eosTokenId = c.tokenId("eos_token_id");
    ({ inv: this.inv, positionScale: this.positionScale } = ropeFrequencies(o.headDim, c.number("rope_theta", 10000), o.ropeScaling, `${label}/config.json`));
    for (let i = 0; i < c.number("num_hidden_layers"); i++) {
      this.blocks.push(
        buildDecoderBlock({
          linears: this.linears,
          prefix: `${this.prefix}layers.${i}`,
          label,
          fused: o.fused,
          sandwichNorms: o.sandwichNorms,
          qSize: o.heads * o.headDim,
          kvSize: o.kvHeads * o.headDim,
        }),
      );
    }
    const embed = requireLayer(this.embeddings, `${this.prefix}embed_tokens`, label);
    this.vocabSize = embed.numEmbeddings;
    this.lmHead = this.linears.get("lm_head") ?? new LinearLayer("lm_head", store, embed.weightKey, undefined, "out_in", hidden, this.vocabSize);
  }

  /** RMSNorm with the weight under `key` (plus Gemma's offset of 1). */
  private norm(x: tf.Tensor, key: string): tf.Tensor {
    const weight = this.store.get(key);
    return rmsNorm(x, this.options.normOffset ? tf.add(weight, this.options.normOffset) : weight, this.options.eps);
  }

  forward(input: ForwardInput, ctx: ForwardContext): ForwardOutput {
    const { inputIds, attentionMask, cache } = input;
    const o = this.options;
    const [batch, seq] = inputIds.shape;
    const past = cache?.length ?? 0;
    let h: tf.Tensor = requireLayer(this.embeddings, `${this.prefix}embed_tokens`, "llama").apply(inputIds, ctx);
    if (o.embedScale !== undefined) h = tf.mul(h, o.embedScale);
    // One bias per distinct window (Gemma-2 alternates windowed and full layers).
    const biases = new Map<number | undefined, tf.Tensor4D>();
    const biasFor = (window: number | undefined): tf.Tensor4D => {
      let bias = biases.get(window);
      if (!bias) {
        bias = attentionBias({ batch, queries: seq, keys: past + seq, causal: true, mask: attentionMask, window, segments: input.segments });
        biases.set(window, bias);
      }
      return bias;
    };
    const { cos, sin } = input.positionIds
      ? ropeTablesAt(this.inv, input.positionIds, this.positionScale)
      : ropeTables(this.inv, past, seq, this.positionScale);
    const rep = o.heads / o.kvHeads;
    const nextCache: KvCache | undefined = cache ? { keys: [], values: [], length: past + seq } : undefined;
    this.blocks.forEach((block, layer) => {
      const projected = block.qkv(this.norm(h, block.inputNorm), ctx);
      const q = applyRope(splitHeads(projected.q, o.heads, o.headDim), cos, sin);
      let k = applyRope(splitHeads(projected.k, o.kvHeads, o.headDim), cos, sin);
      let v = splitHeads(projected.v, o.kvHeads, o.headDim);
      if (cache && nextCache) {
        if (cache.length > 0) {
          k = tf.concat([cache.keys[layer]!, k], 2);
          v = tf.concat([cache.values[layer]!, v], 2);
        }
        nextCache.keys.push(k);
        nextCache.values.push(v);
      }
      const bias = biasFor(o.windowOf(layer));
      const [kr, vr] = [repeatKv(k, rep), repeatKv(v, rep)];
      const attended =
        o.attentionSoftcap === undefined
          ? attention(q, kr, vr, bias, o.attentionScale)
          : softCappedAttention(q, kr, vr, bias, o.attentionScale, o.attentionSoftcap);
      const attnOut = block.o.apply(mergeHeads(attended), ctx);
      const mlp = (x: tf.Tensor) => {
        const { gate, up } = block.gateUp(x, ctx);
        return block.down.apply(tf.mul(activation(o.act, gate), up), ctx);
      };
      if (block.preFeedForwardNorm && block.postFeedForwardNorm) {
        // Gemma-2: residual + norm(attention), then residual + norm(mlp(norm(hidden))).
        h = tf.add(h, this.norm(attnOut, block.postNorm));
        h = tf.add(h, this.norm(mlp(this.norm(h, block.preFeedForwardNorm)), block.postFeedForwardNorm));
      } else {
        h = tf.add(h, attnOut);
        h = tf.add(h, mlp(this.norm(h, block.postNorm)));
      }
    });
    const last = this.norm(h, `${this.prefix}norm.weight`) as tf.Tensor3D;
    const logits = this.lmHead.apply(last, ctx);
    return { logits: o.finalSoftcap === undefined ? logits : softCap(logits, o.finalSoftcap), lastHiddenState: last, cache: nextCache };
  }
}
