import * as tf from "@tensorflow/tfjs";
import type { LinearLayer } from "../layers/linear-layer.js";
import type { ForwardContext } from "../layers/lora-branch.js";
import { requireLayer } from "./build-layers.js";

/** One decoder layer's projections and norm weight keys, separate (LLaMA) or fused (Phi-3). */
export interface DecoderBlock {
  /** RMSNorm weight keys: before attention and after it (LLaMA: before the MLP). */
  inputNorm: string;
  postNorm: string;
  /** Gemma-2's norms before and after the MLP. */
  preFeedForwardNorm?: string;
  postFeedForwardNorm?: string;
  o: LinearLayer;
  down: LinearLayer;
  /** Flat queries, keys and values [b, s, heads·d] / [b, s, kvHeads·d], LoRA included. */
  qkv(x: tf.Tensor, ctx: ForwardContext): { q: tf.Tensor; k: tf.Tensor; v: tf.Tensor };
  /** Gate and up projections [b, s, intermediate], before the activation. */
  gateUp(x: tf.Tensor, ctx: ForwardContext): { gate: tf.Tensor; up: tf.Tensor };
}

/**
 * The block under `prefix` (e.g. "model.layers.3"). Fused modules (Phi-3's `qkv_proj` and
 * `gate_up_proj`) run whole, LoRA on the fused output as PEFT applies it, and are split after.
 */
export function buildDecoderBlock(params: {
  linears: ReadonlyMap<string, LinearLayer>;
  prefix: string;
  label: string;
  fused: boolean;
  sandwichNorms: boolean;
  /** heads·head_dim and kvHeads·head_dim: the row counts of q and of k and v in a fused qkv_proj. */
  qSize: number;
  kvSize: number;
}): DecoderBlock {
  const { linears, prefix: b, label, qSize, kvSize } = params;
  const get = (name: string) => requireLayer(linears, `${b}.${name}`, label);
  const norms = {
    inputNorm: `${b}.input_layernorm.weight`,
    postNorm: `${b}.post_attention_layernorm.weight`,
    ...(params.sandwichNorms
      ? { preFeedForwardNorm: `${b}.pre_feedforward_layernorm.weight`, postFeedForwardNorm: `${b}.post_feedforward_layernorm.weight` }
      : {}),
    o: get("self_attn.o_proj"),
    down: get("mlp.down_proj"),
  };
  if (params.fused) {
    const qkv = get("self_attn.qkv_proj");
    const gateUp = get("mlp.gate_up_proj");
    return {
      ...norms,
      qkv: (x, ctx) => {
        const [q, k, v] = tf.split(qkv.apply(x, ctx), [qSize, kvSize, kvSize], -1);
        return { q: q!, k: k!, v: v! };
      },
      gateUp: (x, ctx) => {
        const [gate, up] = tf.split(gateUp.apply(x, ctx), 2, -1);
        return { gate: gate!, up: up! };
      },
    };
  }
  const [q, k, v] = [get("self_attn.q_proj"), get("self_attn.k_proj"), get("self_attn.v_proj")];
  const [gate, up] = [get("mlp.gate_proj"), get("mlp.up_proj")];
  return {
    ...norms,
    qkv: (x, ctx) => ({ q: q.apply(x, ctx), k: k.apply(x, ctx), v: v.apply(x, ctx) }),
    gateUp: (x, ctx) => ({ gate: gate.apply(x, ctx), up: up.apply(x, ctx) }),
  };
}
