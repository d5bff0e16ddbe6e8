import { LowrankError } from "@lowrank/core";
import { decoderOptions, type DecoderOptions } from "@lowrank/core/internal";
import { floatValueInfo, ONNX_INT64, type ModelProto } from "../onnx/onnx-codec.js";
import { moduleScope } from "../onnx/locate-weights.js";
import { activationOp, INFERENCE_ACTIVATIONS } from "../training/activation-ops.js";
import { cachedAttention, cachedAttentionMask, type CachedAttentionSpec } from "../training/attention-ops.js";
import { linearForward, type FrozenLinear } from "../training/lora-linear-ops.js";
import { layerNormForward, rmsNormForward } from "../training/norm-ops.js";
import { ropeTables, rotary } from "../training/rope-ops.js";
import { fromCheckpoint, inferenceModel, type CheckpointSource } from "./checkpoint-source.js";

/** The model types buildDecoderGraph builds. */
export const ONNX_DECODER_MODEL_TYPES = ["gpt2", "llama", "mistral", "qwen2", "phi3", "gemma", "gemma2"] as const;

const IDS = "input_ids";
const MASK = "attention_mask";
const POSITIONS = "position_ids";
const past = (layer: number, part: "key" | "value") => `past_key_values.${layer}.${part}`;
const present = (layer: number, part: "key" | "value") => `present.${layer}.${part}`;

/** What the architectures below share while they build. */
interface DecoderContext extends CheckpointSource {
  batch: string;
  seq: string;
  /** The additive attention mask for a sliding window (or none), built once per window. */
  maskFor(window: number | undefined): string;
  /** Float32 position ids [batch, seq]. */
  positions(): string;
}

/** An architecture's contribution: the hidden states [tokens, hidden] after the final norm, and the head. */
interface DecoderBody {
  hidden: string;
  head: string;
  kvHeads: number;
  headDim: number;
  layers: number;
  finalSoftcap?: number;
}

async function frozenLinear(ctx: DecoderContext, module: string, layout: FrozenLinear["layout"]): Promise<FrozenLinear> {
  return {
    scope: moduleScope(module),
    weight: await ctx.weight(`${module}.weight`),
    bias: ctx.has(`${module}.bias`) ? await ctx.weight(`${module}.bias`) : undefined,
    layout,
  };
}

function cacheNames(layer: number): Pick<CachedAttentionSpec, "pastKey" | "pastValue" | "presentKey" | "presentValue"> {
  return { pastKey: past(layer, "key"), pastValue: past(layer, "value"), presentKey: present(layer, "key"), presentValue: present(layer, "value") };
}

function checkActivation(act: string, key: string, label: string): void {
  if (!(INFERENCE_ACTIVATIONS as readonly string[]).includes(act))
    throw new LowrankError(
      "CHECKPOINT_INVALID",
      `${label}: config.json \`${key}\` "${act}" is not supported by the onnx backend (supported: ${INFERENCE_ACTIVATIONS.join(", ")})`,
    );
}

/** GPT-2: learned positions, LayerNorm, fused q/k/v in a Conv1D ([in, out] weights), tied head. */
async function gpt2Body(ctx: DecoderContext): Promise<DecoderBody> {
  const { g, c, label } = ctx;
  const d = c.number("n_embd");
  const heads = c.number("n_head");
  const eps = c.number("layer_norm_epsilon", 1e-5);
  const act = c.string("activation_function", "gelu_new");
  checkActivation(act, "activation_function", label);
  const layers = c.number("n_layer");
  const prefix = ctx.has("transformer.wte.weight") ? "transformer." : "";
  const wte = await ctx.weight(`${prefix}wte.weight`);
  const wpe = await ctx.weight(`${prefix}wpe.weight`);
  const tokens = g.one(moduleScope(`${prefix}wte`), "Gather", [wte, IDS]);
  const positions = g.one(moduleScope(`${prefix}wpe`), "Gather", [wpe, POSITIONS]);
  let h = g.one("/embed", "Reshape", [g.one("/embed", "Add", [tokens, positions]), g.constInts([-1, d])]);
  const norm = async (module: string, x: string) =>
    layerNormForward(g, moduleScope(module), x, await ctx.weight(`${module}.weight`), await ctx.weight(`${module}.bias`), eps).y;
  for (let i = 0; i < layers; i++) {
    const b = `${prefix}h.${i}`;
    const cAttn = await frozenLinear(ctx, `${b}.attn.c_attn`, "in_out");
    const [q, k, v] = g.op(cAttn.scope, "Split", [linearForward(g, cAttn, await norm(`${b}.ln_1`, h)).y, g.constInts([d, d, d])], { axis: 1 }, 3);
    const spec: CachedAttentionSpec = {
      scope: moduleScope(`${b}.attn`),
      heads,
      kvHeads: heads,
      headDim: d / heads,
      batch: ctx.batch,
      seq: ctx.seq,
      mask: ctx.maskFor(undefined),
      scale: 1 / Math.sqrt(d / heads) / (c.boolean("scale_attn_by_inverse_layer_idx", false) ? i + 1 : 1),
      ...cacheNames(i),
    };
    const attended = cachedAttention(g, spec, q!, k!, v!);
    h = g.one(moduleScope(b), "Add", [h, linearForward(g, await frozenLinear(ctx, `${b}.attn.c_proj`, "in_out"), attended).y]);
    const fc = linearForward(g, await frozenLinear(ctx, `${b}.mlp.c_fc`, "in_out"), await norm(`${b}.ln_2`, h)).y;
    const activated = activationOp(g, moduleScope(`${b}.mlp.act`), act, fc);
    h = g.one(moduleScope(b), "Add", [h, linearForward(g, await frozenLinear(ctx, `${b}.mlp.c_proj`, "in_out"), activated).y]);
  }
  const hidden = await norm(`${prefix}ln_f`, h);
  return { hidden, head: ctx.has("lm_head.weight") ? await ctx.weight("lm_head.weight") : wte, kvHeads: heads, headDim: d / heads, layers };
}

/** The LLaMA family and its relatives, as core's decoderOptions describes each model type. */
async function llamaBody(ctx: DecoderContext, modelType: string): Promise<DecoderBody> {
  const { g, c, label } = ctx;
  const o: DecoderOptions = decoderOptions(modelType, ctx.config, c, label);
  checkActivation(o.act, modelType.startsWith("gemma") ? "hidden_activation" : "hidden_act", label);
  const layers = c.number("num_hidden_layers");
  const prefix = ctx.has("model.embed_tokens.weight") ? "model." : "";
  const embed = await ctx.weight(`${prefix}embed_tokens.weight`);
  let h = g.one("/embed", "Reshape", [g.one(moduleScope(`${prefix}embed_tokens`), "Gather", [embed, IDS]), g.constInts([-1, c.number("hidden_size")])]);
  if (o.embedScale !== undefined) h = g.one("/embed", "Mul", [h, g.constFloat(o.embedScale)]);
  const rope = rotary(
    ropeTables(g, { headDim: o.headDim, theta: c.number("rope_theta", 10000), scaling: o.ropeScaling, positions: ctx.positions(), label }),
    o.headDim,
  );
  const norm = async (module: string, x: string) => {
    const w = await ctx.weight(`${module}.weight`);
    const weight = o.normOffset ? g.one(moduleScope(module), "Add", [w, g.constFloat(o.normOffset)]) : w;
    return rmsNormForward(g, moduleScope(module), x, weight, o.eps).y;
  };
  const apply = async (module: string, x: string) => linearForward(g, await frozenLinear(ctx, module, "out_in"), x).y;
  const qSize = o.heads * o.headDim;
  const kvSize = o.kvHeads * o.headDim;
  const inter = c.number("intermediate_size");
  for (let i = 0; i < layers; i++) {
    const b = `${prefix}layers.${i}`;
    const x = await norm(`${b}.input_layernorm`, h);
    const [q, k, v] = o.fused
      ? g.op(moduleScope(`${b}.self_attn.qkv_proj`), "Split", [await apply(`${b}.self_attn.qkv_proj`, x), g.constInts([qSize, kvSize, kvSize])], { axis: 1 }, 3)
      : [await apply(`${b}.self_attn.q_proj`, x), await apply(`${b}.self_attn.k_proj`, x), await apply(`${b}.self_attn.v_proj`, x)];
    const spec: CachedAttentionSpec = {
      scope: moduleScope(`${b}.self_attn`),
      heads: o.heads,
      kvHeads: o.kvHeads,
      headDim: o.headDim,
      batch: ctx.batch,
      seq: ctx.seq,
      mask: ctx.maskFor(o.windowOf(i)),
      scale: o.attentionScale,
      softcap: o.attentionSoftcap,
      rope,
      ...cacheNames(i),
    };
    const attended = await apply(`${b}.self_attn.o_proj`, cachedAttention(g, spec, q!, k!, v!));
    const mlp = async (input: string) => {
      const [gate, up] = o.fused
        ? g.op(moduleScope(`${b}.mlp.gate_up_proj`), "Split", [await apply(`${b}.mlp.gate_up_proj`, input), g.constInts([inter, inter])], { axis: 1 }, 2)
        : [await apply(`${b}.mlp.gate_proj`, input), await apply(`${b}.mlp.up_proj`, input)];
      const activated = activationOp(g, moduleScope(`${b}.mlp.act_fn`), o.act, gate!);
      return apply(`${b}.mlp.down_proj`, g.one(moduleScope(`${b}.mlp`), "Mul", [activated, up!]));
    };
    if (o.sandwichNorms) {
      h = g.one(moduleScope(b), "Add", [h, await norm(`${b}.post_attention_layernorm`, attended)]);
      h = g.one(moduleScope(b), "Add", [h, await norm(`${b}.post_feedforward_layernorm`, await mlp(await norm(`${b}.pre_feedforward_layernorm`, h)))]);
    } else {
      h = g.one(moduleScope(b), "Add", [h, attended]);
      h = g.one(moduleScope(b), "Add", [h, await mlp(await norm(`${b}.post_attention_layernorm`, h))]);
    }
  }
  const hidden = await norm(`${prefix}norm`, h);
  const head = ctx.has("lm_head.weight") ? await ctx.weight("lm_head.weight") : embed;
  return { hidden, head, kvHeads: o.kvHeads, headDim: o.headDim, layers, finalSoftcap: o.finalSoftcap };
}

/**
 * Builds the inference graph of a Hugging Face decoder checkpoint (GPT-2, LLaMA, Mistral, Qwen2,
 * Phi-3, Gemma, Gemma-2; safetensors in any float type, sharded or not) with a key/value cache, in
 * the layout Optimum exports decoders for transformers.js: inputs input_ids, attention_mask
 * [batch, past + new], position_ids and past_key_values.N.key/value [batch, kvHeads, past, headDim];
 * outputs logits and present.N.key/value. A first call takes an empty past. Weights are float32
 * initializers under their PyTorch names and every projection is one Gemm in its module's scope,
 * so runtime adapters and merges find them as in any torch.onnx export.
 * @throws LowrankError CHECKPOINT_INVALID for another model type, a missing tensor or config field.
 */
export async function buildDecoderGraph(dir: string): Promise<ModelProto> {
  return fromCheckpoint(dir, ONNX_DECODER_MODEL_TYPES, "ONNX graph builder", async (source) => {
    const { g } = source;
    const shape = g.one("/dims", "Shape", [IDS]);
    const batch = g.one("/dims", "Slice", [shape, g.constInts([0]), g.constInts([1])]);
    const seq = g.one("/dims", "Slice", [shape, g.constInts([1]), g.constInts([2])]);
    const pastLength = g.one("/dims", "Slice", [g.one("/dims", "Shape", [past(0, "key")]), g.constInts([2]), g.constInts([3])]);
    const masks = new Map<number | undefined, string>();
    let positions: string | undefined;
    const ctx: DecoderContext = {
      ...source,
      batch,
      seq,
      maskFor: (window) => {
        let mask = masks.get(window);
        if (!mask) {
          mask = cachedAttentionMask(g, { attentionMask: MASK, pastLength, seq, window });
          masks.set(window, mask);
        }
        return mask;
      },
      positions: () => {
        positions ??= g.one("/positions", "Cast", [POSITIONS], { to: 1 });
        return positions;
      },
    };
    const body = source.modelType === "gpt2" ? await gpt2Body(ctx) : await llamaBody(ctx, source.modelType);
    const vocab = source.shapeOf(body.head)?.[0];
    if (vocab === undefined) throw new LowrankError("CHECKPOINT_INVALID", `${dir}: no output head`);
    let logits = g.one("/lm_head", "Gemm", [body.hidden, body.head], { transB: 1 });
    logits = g.one("/lm_head", "Reshape", [logits, g.one("/lm_head", "Concat", [batch, seq, g.constInts([vocab])], { axis: 0 })]);
    if (body.finalSoftcap !== undefined)
      logits = g.one("/softcap", "Mul", [
        g.one("/softcap", "Tanh", [g.one("/softcap", "Div", [logits, g.constFloat(body.finalSoftcap)])]),
        g.constFloat(body.finalSoftcap),
      ]);
    g.renameOutput(logits, "logits");
    const cache = Array.from({ length: body.layers }, (_, i) => [i, "key", "value"] as const).flatMap(([i, ...parts]) => parts.map((p) => [i, p] as const));
    const kvShape = (length: string) => ["batch", body.kvHeads, length, body.headDim];
    const input = [
      floatValueInfo(IDS, ["batch", "sequence"], ONNX_INT64),
      floatValueInfo(MASK, ["batch", "total_sequence"], ONNX_INT64),
      floatValueInfo(POSITIONS, ["batch", "sequence"], ONNX_INT64),
      ...cache.map(([i, p]) => floatValueInfo(past(i, p), kvShape("past_sequence"))),
    ];
    const output = [floatValueInfo("logits", ["batch", "sequence", vocab]), ...cache.map(([i, p]) => floatValueInfo(present(i, p), kvShape("total_sequence")))];
    return inferenceModel(g, `lowrank_${source.modelType}_decoder`, input, output);
  });
}
