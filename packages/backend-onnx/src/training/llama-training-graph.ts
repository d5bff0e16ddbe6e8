import { LowrankError } from "@lowrank/core";
import { attentionWindow } from "@lowrank/core/internal";
import { moduleScope } from "../onnx/locate-weights.js";
import { activationForward, TRAINABLE_ACTIVATIONS, type ActivationResult } from "./activation-ops.js";
import { attentionBackward, attentionForward, type AttentionSaved, type AttentionSpec } from "./attention-ops.js";
import { linearBackward, linearForward, type FrozenLinear, type LinearSaved } from "./lora-linear-ops.js";
import { loraInputs } from "./lora-plan.js";
import { causalLmLoss } from "./loss-ops.js";
import { rmsNormBackward, rmsNormForward, type NormSaved } from "./norm-ops.js";
import { ropeTransform } from "./rope-ops.js";
import { causalMask, IDS_INPUT, sequenceDims, type ArchitectureContext, type TrainingArchitecture } from "./training-graph.js";

const PROJECTIONS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"] as const;
const LORA_MODULES = /(^|\.)layers\.\d+\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)$/;

type Projection = (typeof PROJECTIONS)[number];

interface BlockSaved {
  inputNorm: NormSaved;
  postNorm: NormSaved;
  attention: AttentionSaved;
  spec: AttentionSpec;
  linears: Record<Projection, { layer: FrozenLinear; saved: LinearSaved }>;
  gate: ActivationResult;
  up: string;
}

/**
 * The LLaMA family (llama, mistral, qwen2) as the tfjs backend runs it: RMSNorm, rotary positions
 * (rope_theta, linear and llama3 scaling), grouped-query attention, SwiGLU MLP, q/k/v biases when the
 * checkpoint has them, nn.Linear weights stored [out, in], tied or separate lm_head. LoRA on any of
 * q/k/v/o_proj and gate/up/down_proj.
 */
export const LLAMA_TRAINING: TrainingArchitecture = {
  supports: (module) => LORA_MODULES.test(module),
  async build(ctx: ArchitectureContext): Promise<void> {
    const { g, label } = ctx;
    const hidden = ctx.num("hidden_size");
    const heads = ctx.num("num_attention_heads");
    const kvHeads = ctx.num("num_key_value_heads", heads);
    const headDim = ctx.num("head_dim", hidden / heads);
    const eps = ctx.num("rms_norm_eps", 1e-6);
    const act = typeof ctx.config.hidden_act === "string" ? ctx.config.hidden_act : "silu";
    if (!(TRAINABLE_ACTIVATIONS as readonly string[]).includes(act))
      throw new LowrankError(
        "CHECKPOINT_INVALID",
        `${label}: config.json \`hidden_act\` "${act}" is not supported by the onnx trainer (supported: ${TRAINABLE_ACTIVATIONS.join(", ")})`,
      );
    const prefix = ctx.has("model.embed_tokens.weight") ? "model." : "";
    const lora = loraInputs(g, ctx.slots, { dropout: ctx.dropout });
    const embed = await ctx.weight(`${prefix}embed_tokens.weight`);
    const { batch, seq, seqScalar } = sequenceDims(g);
    const mask = causalMask(g, seq, attentionWindow(ctx.config, label));
    const rope = ropeTransform(g, { headDim, theta: ctx.num("rope_theta", 10000), scaling: ctx.config.rope_scaling, seqScalar, label });
    let h = g.one("/embed", "Reshape", [g.one(moduleScope(`${prefix}embed_tokens`), "Gather", [embed, IDS_INPUT]), g.constInts([-1, hidden])]);

    const linear = async (module: string): Promise<FrozenLinear> => ({
      scope: moduleScope(module),
      weight: await ctx.weight(`${module}.weight`),
      bias: ctx.has(`${module}.bias`) ? await ctx.weight(`${module}.bias`) : undefined,
      layout: "out_in",
      lora: lora.get(module),
    });
    const blocks: BlockSaved[] = [];
    for (let i = 0; i < ctx.num("num_hidden_layers"); i++) {
      const b = `${prefix}layers.${i}`;
      const layers = {} as Record<Projection, FrozenLinear>;
      for (const p of PROJECTIONS) layers[p] = await linear(`${b}.${p}`);
      const saved = {} as Record<Projection, { layer: FrozenLinear; saved: LinearSaved }>;
      const apply = (p: Projection, x: string) => {
        const r = linearForward(g, layers[p], x);
        saved[p] = { layer: layers[p], saved: r.saved };
        return r.y;
      };
      const inputNorm = rmsNormForward(g, moduleScope(`${b}.input_layernorm`), h, await ctx.weight(`${b}.input_layernorm.weight`), eps);
      const spec: AttentionSpec = { scope: moduleScope(`${b}.self_attn`), heads, kvHeads, headDim, batch, seq, mask, scale: 1 / Math.sqrt(headDim), rope };
      const attention = attentionForward(
        g,
        spec,
        apply("self_attn.q_proj", inputNorm.y),
        apply("self_attn.k_proj", inputNorm.y),
        apply("self_attn.v_proj", inputNorm.y),
      );
      h = g.one(moduleScope(b), "Add", [h, apply("self_attn.o_proj", attention.y)]);
      const postNorm = rmsNormForward(g, moduleScope(`${b}.post_attention_layernorm`), h, await ctx.weight(`${b}.post_attention_layernorm.weight`), eps);
      const gate = activationForward(g, moduleScope(`${b}.mlp.act_fn`), act, apply("mlp.gate_proj", postNorm.y));
      const up = apply("mlp.up_proj", postNorm.y);
      h = g.one(moduleScope(b), "Add", [h, apply("mlp.down_proj", g.one(moduleScope(`${b}.mlp`), "Mul", [gate.y, up]))]);
      blocks.push({ inputNorm: inputNorm.saved, postNorm: postNorm.saved, attention: attention.saved, spec, linears: saved, gate, up });
    }
    const norm = await ctx.weight(`${prefix}norm.weight`);
    const final = rmsNormForward(g, moduleScope(`${prefix}norm`), h, norm, eps);
    const head = ctx.has("lm_head.weight") ? await ctx.weight("lm_head.weight") : embed;
    const loss = causalLmLoss(g, final.y, head);
    if (!ctx.gradients) return;

    let dh = rmsNormBackward(g, moduleScope(`${prefix}norm`), final.saved, norm, loss.dHidden());
    for (let i = blocks.length - 1; i >= 0; i--) {
      const b = `${prefix}layers.${i}`;
      const block = blocks[i]!;
      const back = (p: Projection, dy: string) => linearBackward(g, block.linears[p].layer, block.linears[p].saved, dy);
      const s = `/grad${moduleScope(`${b}.mlp`)}`;
      const dProduct = back("mlp.down_proj", dh);
      const dGate = g.one(s, "Mul", [g.one(s, "Mul", [dProduct, block.up]), block.gate.derivative()]);
      const dUp = g.one(s, "Mul", [dProduct, block.gate.y]);
      const dPost = g.one(s, "Add", [back("mlp.gate_proj", dGate), back("mlp.up_proj", dUp)]);
      dh = g.one(`/grad${moduleScope(b)}`, "Add", [
        dh,
        rmsNormBackward(g, moduleScope(`${b}.post_attention_layernorm`), block.postNorm, await ctx.weight(`${b}.post_attention_layernorm.weight`), dPost),
      ]);
      const { dq, dk, dv } = attentionBackward(g, block.spec, block.attention, back("self_attn.o_proj", dh));
      const a = `/grad${moduleScope(`${b}.self_attn`)}`;
      const dInput = g.one(a, "Add", [g.one(a, "Add", [back("self_attn.q_proj", dq), back("self_attn.k_proj", dk)]), back("self_attn.v_proj", dv)]);
      dh = g.one(`/grad${moduleScope(b)}`, "Add", [
        dh,
        rmsNormBackward(g, moduleScope(`${b}.input_layernorm`), block.inputNorm, await ctx.weight(`${b}.input_layernorm.weight`), dInput),
      ]);
    }
  },
};
