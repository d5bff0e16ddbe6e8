import { LowrankError } from "@lowrank/core";
import { moduleScope } from "../onnx/locate-weights.js";
import { activationForward, TRAINABLE_ACTIVATIONS } from "./activation-ops.js";
import { attentionBackward, attentionForward, type AttentionSaved, type AttentionSpec } from "./attention-ops.js";
import { embeddingGradient, positionEmbeddingGradient } from "./embedding-ops.js";
import { tokenEmbeddingLora } from "./lora-embedding-ops.js";
import { linearBackward, linearForward, linearParameterGradients, type FrozenLinear, type LinearSaved } from "./lora-linear-ops.js";
import { loraInputs } from "./lora-plan.js";
import { causalLmLoss, lossChunks } from "./loss-ops.js";
import { layerNormBackward, layerNormForward, layerNormParameterGradients, type NormSaved } from "./norm-ops.js";
import {
  IDS_INPUT,
  recomputedInput,
  sequenceDims,
  tokenPositions,
  trainingMask,
  type ArchitectureContext,
  type TrainingArchitecture,
} from "./training-graph.js";

const LORA_MODULES = /(^|\.)(h\.\d+\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)|wte)$|^lm_head$/;

type SavedLinear = { layer: FrozenLinear; saved: LinearSaved };

interface BlockSaved {
  ln1: NormSaved;
  ln2: NormSaved;
  attention: AttentionSaved;
  spec: AttentionSpec;
  /** attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj. */
  linears: [SavedLinear, SavedLinear, SavedLinear, SavedLinear];
  derivative: () => string;
}

/**
 * GPT-2 (transformers' GPT2LMHeadModel): learned positions, pre-LayerNorm blocks, fused q/k/v in a
 * Conv1D (weights stored [in, out]), gelu_new, output head tied to the token embedding. LoRA (or
 * DoRA) on any of attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj, LoRA on wte (the tied head
 * stays the base table, as in PEFT) and on lm_head (the output head only); the gradient of every trained parameter (`ctx.trains`: biases
 * and modules_to_save, or with `ctx.full` every one; the tied head's added to the token embedding's).
 */
export const GPT2_TRAINING: TrainingArchitecture = {
  supports: (module) => LORA_MODULES.test(module),
  async build(ctx: ArchitectureContext): Promise<void> {
    const { g, label } = ctx;
    const layers = ctx.num("n_layer");
    const heads = ctx.num("n_head");
    const d = ctx.num("n_embd");
    const eps = ctx.num("layer_norm_epsilon", 1e-5);
    const act = typeof ctx.config.activation_function === "string" ? ctx.config.activation_function : "gelu_new";
    if (!(TRAINABLE_ACTIVATIONS as readonly string[]).includes(act))
      throw new LowrankError(
        "CHECKPOINT_INVALID",
        `${label}: config.json \`activation_function\` "${act}" is not supported by the onnx trainer (supported: ${TRAINABLE_ACTIVATIONS.join(", ")})`,
      );
    const scaleByLayer = ctx.config.scale_attn_by_inverse_layer_idx === true;
    const prefix = ctx.has("transformer.wte.weight") ? "transformer." : "";
    const lora = loraInputs(g, ctx.slots, { dropout: ctx.dropout });
    const wte = await ctx.weight(`${prefix}wte.weight`);
    const wpe = await ctx.weight(`${prefix}wpe.weight`);
    const { batch, seq, seqScalar } = sequenceDims(g);
    const mask = trainingMask(g, ctx, seq);
    const positions = tokenPositions(g, ctx, seqScalar);
    const embedded = g.one("/embed", "Add", [g.one("/wte", "Gather", [wte, IDS_INPUT]), g.one("/wpe", "Gather", [wpe, positions])]);
    let h = g.one("/embed", "Reshape", [embedded, g.constInts([-1, d])]);
    const wteLora = tokenEmbeddingLora(g, { module: `${prefix}wte`, scope: moduleScope(`${prefix}wte`), slots: ctx.slots, lora, ids: IDS_INPUT });
    if (wteLora) h = g.one("/embed", "Add", [h, wteLora.y]);

    const linear = async (module: string): Promise<FrozenLinear> => ({
      scope: moduleScope(module),
      weight: await ctx.weight(`${module}.weight`),
      bias: await ctx.weight(`${module}.bias`),
      layout: "in_out",
      lora: lora.get(module),
    });
    /** Block i's forward from its input `x`, with what its backward reads. */
    const forwardBlock = async (i: number, x: string): Promise<{ y: string; saved: BlockSaved }> => {
      const b = `${prefix}h.${i}`;
      const cAttn = await linear(`${b}.attn.c_attn`);
      const attnProj = await linear(`${b}.attn.c_proj`);
      const cFc = await linear(`${b}.mlp.c_fc`);
      const mlpProj = await linear(`${b}.mlp.c_proj`);
      const ln1 = layerNormForward(g, moduleScope(`${b}.ln_1`), x, await ctx.weight(`${b}.ln_1.weight`), await ctx.weight(`${b}.ln_1.bias`), eps);
      const qkv = linearForward(g, cAttn, ln1.y);
      const [q, k, v] = g.op(cAttn.scope, "Split", [qkv.y, g.constInts([d, d, d])], { axis: 1 }, 3);
      const spec: AttentionSpec = {
        scope: moduleScope(`${b}.attn`),
        heads,
        kvHeads: heads,
        headDim: d / heads,
        batch,
        seq,
        mask,
        scale: 1 / Math.sqrt(d / heads) / (scaleByLayer ? i + 1 : 1),
      };
      const attention = attentionForward(g, spec, q!, k!, v!);
      const proj = linearForward(g, attnProj, attention.y);
      const mid = g.one(moduleScope(b), "Add", [x, proj.y]);
      const ln2 = layerNormForward(g, moduleScope(`${b}.ln_2`), mid, await ctx.weight(`${b}.ln_2.weight`), await ctx.weight(`${b}.ln_2.bias`), eps);
      const fc = linearForward(g, cFc, ln2.y);
      const activation = activationForward(g, moduleScope(`${b}.mlp.act`), act, fc.y);
      const out = linearForward(g, mlpProj, activation.y);
      const saved: BlockSaved = {
        ln1: ln1.saved,
        ln2: ln2.saved,
        attention: attention.saved,
        spec,
        derivative: activation.derivative,
        linears: [
          { layer: cAttn, saved: qkv.saved },
          { layer: attnProj, saved: proj.saved },
          { layer: cFc, saved: fc.saved },
          { layer: mlpProj, saved: out.saved },
        ],
      };
      return { y: g.one(moduleScope(b), "Add", [mid, out.y]), saved };
    };
    const inputs: string[] = [];
    const blocks: BlockSaved[] = [];
    for (let i = 0; i < layers; i++) {
      inputs.push(h);
      const block = await forwardBlock(i, h);
      blocks.push(block.saved);
      h = block.y;
    }
    const lnF = `${prefix}ln_f`;
    const final = layerNormForward(g, moduleScope(lnF), h, await ctx.weight(`${lnF}.weight`), await ctx.weight(`${lnF}.bias`), eps);
    const head = ctx.has("lm_head.weight") ? await ctx.weight("lm_head.weight") : wte;
    const loss = causalLmLoss(g, final.y, head, { chunks: lossChunks(ctx.num("vocab_size")), lora: lora.get("lm_head") });
    if (!ctx.gradients) return;

    // Backward: activation gradients through the weights; LoRA gradients and those of the trained
    // parameters (full: every one; LoRA: PEFT's trained biases and modules_to_save) become outputs.
    // Unused nodes are pruned.
    const linearBack = (l: SavedLinear, dy: string): string => {
      if (ctx.trains(l.layer.weight) || (l.layer.bias && ctx.trains(l.layer.bias))) {
        const grads = linearParameterGradients(g, l.layer, l.saved, dy);
        if (ctx.trains(l.layer.weight)) ctx.gradient(l.layer.weight, grads.weight);
        if (l.layer.bias && grads.bias && ctx.trains(l.layer.bias)) ctx.gradient(l.layer.bias, grads.bias);
      }
      return linearBackward(g, l.layer, l.saved, dy);
    };
    const normBack = async (module: string, saved: NormSaved, dy: string): Promise<string> => {
      const weight = `${module}.weight`;
      const bias = `${module}.bias`;
      if (ctx.trains(weight) || ctx.trains(bias)) {
        const grads = layerNormParameterGradients(g, moduleScope(module), saved, dy);
        if (ctx.trains(weight)) ctx.gradient(weight, grads.weight);
        if (ctx.trains(bias)) ctx.gradient(bias, grads.bias);
      }
      return layerNormBackward(g, moduleScope(module), saved, await ctx.weight(weight), dy);
    };
    const dFinal = loss.dHidden();
    if (ctx.trains(head)) ctx.gradient(head, loss.dHead());
    let dh = await normBack(lnF, final.saved, dFinal);
    for (let i = layers - 1; i >= 0; i--) {
      const b = `${prefix}h.${i}`;
      // Recomputation: the block's forward again, from its input, once its output gradient exists.
      const block = ctx.recompute ? (await forwardBlock(i, recomputedInput(g, inputs[i]!, dh))).saved : blocks[i]!;
      const [cAttn, attnProj, cFc, mlpProj] = block.linears;
      const dAct = linearBack(mlpProj, dh);
      const dFc = g.one(`/grad${moduleScope(`${b}.mlp.act`)}`, "Mul", [dAct, block.derivative()]);
      const dLn2 = linearBack(cFc, dFc);
      dh = g.one(`/grad${moduleScope(b)}`, "Add", [dh, await normBack(`${b}.ln_2`, block.ln2, dLn2)]);
      const dAttn = linearBack(attnProj, dh);
      const { dq, dk, dv } = attentionBackward(g, block.spec, block.attention, dAttn);
      const dQkv = g.one(`/grad${cAttn.layer.scope}`, "Concat", [dq, dk, dv], { axis: 1 });
      const dLn1 = linearBack(cAttn, dQkv);
      dh = g.one(`/grad${moduleScope(b)}`, "Add", [dh, await normBack(`${b}.ln_1`, block.ln1, dLn1)]);
    }
    wteLora?.backward(dh);
    if (ctx.trains(wte)) ctx.gradient(wte, embeddingGradient(g, moduleScope(`${prefix}wte`), wte, IDS_INPUT, dh));
    if (ctx.trains(wpe)) {
      // Packed rows read their own positions: scatter each token's gradient at its position.
      const wpeScope = moduleScope(`${prefix}wpe`);
      ctx.gradient(
        wpe,
        ctx.packed ? embeddingGradient(g, wpeScope, wpe, positions, dh) : positionEmbeddingGradient(g, wpeScope, { table: wpe, positions, seq, hidden: d }, dh),
      );
    }
  },
};
