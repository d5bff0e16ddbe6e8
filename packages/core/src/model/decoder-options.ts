import { LowrankError } from "../errors/lowrank-error.js";
import { attentionWindow } from "./attention-window.js";
import type { RopeScaling } from "../math/rope.js";
import type { ConfigValues } from "./config-values.js";

/**
 * What sets the LLaMA-style decoders apart (llama, mistral, qwen2, phi3, gemma, gemma2), read from
 * config.json as transformers 4.43 reads it for the model type (eager attention).
 */
export interface DecoderOptions {
  heads: number;
  kvHeads: number;
  headDim: number;
  /** RMSNorm epsilon. */
  eps: number;
  /** Added to every RMSNorm weight: Gemma normalises with x·(1 + w). */
  normOffset: number;
  /** Multiplier on the token embeddings (Gemma: √hidden_size rounded to float32), if any. */
  embedScale?: number;
  /** Scale of q·kᵀ: head_dim^-0.5, or Gemma-2's `query_pre_attn_scalar`^-0.5. */
  attentionScale: number;
  /** Gemma-2's `attn_logit_softcapping`: scores → tanh(scores / cap)·cap, before the mask. */
  attentionSoftcap?: number;
  /** Gemma-2's `final_logit_softcapping`, the same on the logits. */
  finalSoftcap?: number;
  /** Gemma-2's extra norms: on the attention output, and before and after the MLP. */
  sandwichNorms: boolean;
  /** Phi-3's fused `qkv_proj` (q, k, v by rows) and `gate_up_proj` (gate, then up). */
  fused: boolean;
  /** MLP activation on the gate projection. */
  act: string;
  /** `rope_scaling` as the model type honours it. */
  ropeScaling: RopeScaling | null;
  /** The sliding window of layer `i` (key j visible from query i when i − window < j ≤ i), if any. */
  windowOf: (layer: number) => number | undefined;
}

/** config.json `key` as a positive integer window, or undefined when absent or null. */
function windowSize(config: Record<string, unknown>, key: string, label: string): number | undefined {
  const w = config[key];
  if (w === undefined || w === null) return undefined;
  if (typeof w !== "number" || !Number.isInteger(w) || w < 1) {
    throw new LowrankError("CHECKPOINT_INVALID", `${label}/config.json: \`${key}\` must be a positive integer or null, got ${JSON.stringify(w)}`);
  }
  return w;
}

/**
 * The decoder options for `modelType`; a field config.json leaves out takes the default of the
 * model type's transformers config class.
 * @throws LowrankError CHECKPOINT_INVALID for a config field out of range, Phi-3 `rope_scaling`
 * (su / yarn / longrope are not implemented), or Qwen2's per-layer window (core's attentionWindow).
 */
export function decoderOptions(modelType: string, config: Record<string, unknown>, c: ConfigValues, label: string): DecoderOptions {
  const gemmaFamily = modelType === "gemma" || modelType === "gemma2";
  const heads = c.number("num_attention_heads");
  const headDim = c.number("head_dim", gemmaFamily ? 256 : c.number("hidden_size") / heads);
  const base: DecoderOptions = {
    heads,
    kvHeads: c.number("num_key_value_heads", heads),
    headDim,
    eps: c.number("rms_norm_eps", modelType === "phi3" ? 1e-5 : 1e-6),
    normOffset: 0,
    attentionScale: 1 / Math.sqrt(headDim),
    sandwichNorms: false,
    fused: false,
    act: c.string("hidden_act", "silu"),
    ropeScaling: (config.rope_scaling ?? null) as RopeScaling | null,
    windowOf: () => undefined,
  };
  switch (modelType) {
    case "phi3": {
      if (base.ropeScaling !== null) {
        const kind = base.ropeScaling.rope_type ?? base.ropeScaling.type;
        throw new LowrankError(
          "CHECKPOINT_INVALID",
          `${label}/config.json: Phi-3 \`rope_scaling\` type ${JSON.stringify(kind)} is not supported by lowrank (only \`rope_scaling\` null ` +
            `is); use a 4k-context Phi-3 checkpoint`,
        );
      }
      // transformers 4.43 builds Phi-3's eager mask with _prepare_4d_causal_attention_mask, which
      // keeps the query and the `sliding_window` tokens before it.
      const w = windowSize(config, "sliding_window", label);
      return { ...base, fused: true, windowOf: () => (w === undefined ? undefined : w + 1) };
    }
    case "gemma":
    case "gemma2": {
      // transformers 4.43 reads `hidden_activation` only (Gemma's `hidden_act` is ignored).
      const gemma: DecoderOptions = {
        ...base,
        normOffset: 1,
        embedScale: Math.fround(Math.sqrt(c.number("hidden_size"))),
        act: c.string("hidden_activation", "gelu_pytorch_tanh"),
        // Gemma's rotary embedding has no scaling in 4.43.
        ropeScaling: null,
      };
      if (modelType === "gemma") return gemma;
      // Absent fields take Gemma2Config's defaults; null turns a soft cap or the window off.
      const w = "sliding_window" in config ? windowSize(config, "sliding_window", label) : 4096;
      return {
        ...gemma,
        attentionScale: c.number("query_pre_attn_scalar", 224) ** -0.5,
        attentionSoftcap: "attn_logit_softcapping" in config ? c.optionalNumber("attn_logit_softcapping") : 50,
        finalSoftcap: "final_logit_softcapping" in config ? c.optionalNumber("final_logit_softcapping") : 30,
        sandwichNorms: true,
        // Gemma2DecoderLayer.is_sliding: even-numbered layers only.
        windowOf: (layer) => (layer % 2 === 0 ? w : undefined),
      };
    }
    default: {
      const w = attentionWindow({ ...config, model_type: modelType }, label);
      return { ...base, windowOf: () => w };
    }
  }
}
