import { LowrankError } from "@lowrank/core";
import { ConfigValues, decoderOptions } from "@lowrank/core/internal";
import { moduleScope } from "../onnx/locate-weights.js";
import { TRAINABLE_ACTIVATIONS } from "./activation-ops.js";
import { decoderLayer, rmsNorm, type DecoderLayerContext, type Traced } from "./decoder-layer-ops.js";
import { embeddingGradient } from "./embedding-ops.js";
import { tokenEmbeddingLora } from "./lora-embedding-ops.js";
import { loraInputs } from "./lora-plan.js";
import { causalLmLoss, lossChunks } from "./loss-ops.js";
import { ropeTables, rotary } from "./rope-ops.js";
import {
  IDS_INPUT,
  recomputedInput,
  sequenceDims,
  tokenPositions,
  trainingMask,
  type ArchitectureContext,
  type TrainingArchitecture,
} from "./training-graph.js";

const LORA_MODULES = /(^|\.)(layers\.\d+\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)|embed_tokens)$|^lm_head$/;
const FUSED_LORA_MODULES = /(^|\.)(layers\.\d+\.(self_attn\.(qkv|o)_proj|mlp\.(gate_up|down)_proj)|embed_tokens)$|^lm_head$/;

/**
 * The LLaMA family and its relatives (llama, mistral, qwen2, phi3, gemma, gemma2) as core's
 * decoderOptions describes each model type — the description the inference graph and the tfjs
 * backend follow: RMSNorm (Gemma: x·(1 + w)), rotary positions, grouped-query attention with its
 * scale, soft cap and per-layer sliding window, a gated MLP (SwiGLU, GeGLU), Gemma-2's sandwich
 * norms and final-logit soft cap, Gemma's scaled embeddings; q/k/v biases when the checkpoint has
 * them; nn.Linear weights stored [out, in]; tied or separate lm_head. LoRA (or DoRA) on any of
 * q/k/v/o_proj and gate/up/down_proj, or Phi-3's fused qkv_proj, o_proj, gate_up_proj and down_proj,
 * LoRA on embed_tokens (before Gemma's scale, as the table's rows) and on lm_head (the output head only, soft cap after it). The gradient of every
 * trained parameter (`ctx.trains`: biases and modules_to_save — lm_head, a norm, embed_tokens —
 * or with `ctx.full` every one; a tied head's added to the token embedding's).
 * @throws LowrankError CHECKPOINT_INVALID for what decoderOptions refuses or an activation the trainer lacks.
 */
export function llamaTraining(modelType: string, config: Record<string, unknown>, label: string): TrainingArchitecture {
  const c = new ConfigValues(config, label);
  const o = decoderOptions(modelType, config, c, label);
  if (!(TRAINABLE_ACTIVATIONS as readonly string[]).includes(o.act))
    throw new LowrankError(
      "CHECKPOINT_INVALID",
      `${label}: config.json \`${modelType.startsWith("gemma") ? "hidden_activation" : "hidden_act"}\` "${o.act}" is not supported by the onnx trainer ` +
        `(supported: ${TRAINABLE_ACTIVATIONS.join(", ")})`,
    );
  const modules = o.fused ? FUSED_LORA_MODULES : LORA_MODULES;
  return {
    supports: (module) => modules.test(module),
    async build(ctx: ArchitectureContext): Promise<void> {
      const { g } = ctx;
      const prefix = ctx.has("model.embed_tokens.weight") ? "model." : "";
      const lora = loraInputs(g, ctx.slots, { dropout: ctx.dropout });
      const { batch, seq, seqScalar } = sequenceDims(g);
      const masks = new Map<number | undefined, string>();
      const layerCtx: DecoderLayerContext = {
        g,
        o,
        prefix,
        intermediate: c.number("intermediate_size"),
        batch,
        seq,
        rope: rotary(
          ropeTables(g, {
            headDim: o.headDim,
            theta: c.number("rope_theta", 10000),
            scaling: o.ropeScaling,
            positions: g.one("/rope", "Cast", [tokenPositions(g, ctx, seqScalar)], { to: 1 }),
            label,
          }),
          o.headDim,
        ),
        maskFor: (window) => {
          let mask = masks.get(window);
          if (!mask) masks.set(window, (mask = trainingMask(g, ctx, seq, window)));
          return mask;
        },
        weight: (name) => ctx.weight(name),
        linear: async (module) => ({
          scope: moduleScope(module),
          weight: await ctx.weight(`${module}.weight`),
          bias: ctx.has(`${module}.bias`) ? await ctx.weight(`${module}.bias`) : undefined,
          layout: "out_in",
          lora: lora.get(module),
        }),
        trains: (name) => ctx.trains(name),
        gradient: (name, value) => ctx.gradient(name, value),
      };
      const embed = await ctx.weight(`${prefix}embed_tokens.weight`);
      const tokens = g.one(moduleScope(`${prefix}embed_tokens`), "Gather", [embed, IDS_INPUT]);
      let h = g.one("/embed", "Reshape", [tokens, g.constInts([-1, c.number("hidden_size")])]);
      const embedScope = moduleScope(`${prefix}embed_tokens`);
      const embedLora = tokenEmbeddingLora(g, { module: `${prefix}embed_tokens`, scope: embedScope, slots: ctx.slots, lora, ids: IDS_INPUT });
      if (embedLora) h = g.one("/embed", "Add", [h, embedLora.y]);
      if (o.embedScale !== undefined) h = g.one("/embed", "Mul", [h, g.constFloat(o.embedScale)]);
      const layers: Traced[] = [];
      const inputs: string[] = [];
      for (let i = 0; i < c.number("num_hidden_layers"); i++) {
        inputs.push(h);
        layers.push(await decoderLayer(layerCtx, i, h));
        h = layers[i]!.y;
      }
      const final = await rmsNorm(layerCtx, `${prefix}norm`, h);
      const head = ctx.has("lm_head.weight") ? await ctx.weight("lm_head.weight") : embed;
      const loss = causalLmLoss(g, final.y, head, { softcap: o.finalSoftcap, chunks: lossChunks(ctx.num("vocab_size")), lora: lora.get("lm_head") });
      if (!ctx.gradients) return;
      const dHidden = loss.dHidden();
      if (ctx.trains(head)) ctx.gradient(head, loss.dHead());
      let dEmbedded = final.backward(dHidden);
      for (let i = layers.length - 1; i >= 0; i--) {
        // Recomputation: the layer's forward again, from its input, once its output gradient exists.
        const layer = ctx.recompute ? await decoderLayer(layerCtx, i, recomputedInput(g, inputs[i]!, dEmbedded)) : layers[i]!;
        dEmbedded = layer.backward(dEmbedded);
      }
      // With LoRA and neither LoRA on embed_tokens nor the table trained, the gradient stops at the lowest layer's input.
      if (!ctx.trains(embed) && !embedLora) return;
      const scaled = o.embedScale === undefined ? dEmbedded : g.one("/grad/embed", "Mul", [dEmbedded, g.constFloat(o.embedScale)]);
      embedLora?.backward(scaled);
      if (ctx.trains(embed)) ctx.gradient(embed, embeddingGradient(g, embedScope, embed, IDS_INPUT, scaled));
    },
  };
}
