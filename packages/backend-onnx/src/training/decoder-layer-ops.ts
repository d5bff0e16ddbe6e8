import type { DecoderOptions } from "@lowrank/core/internal";
import type { GraphBuilder } from "../export/graph-builder.js";
import { moduleScope } from "../onnx/locate-weights.js";
import { activationForward } from "./activation-ops.js";
import { attentionBackward, attentionForward, type AttentionSpec, type HeadTransform } from "./attention-ops.js";
import { linearBackward, linearForward, linearParameterGradients, type FrozenLinear } from "./lora-linear-ops.js";
import { rmsNormBackward, rmsNormForward, rmsNormWeightGradient } from "./norm-ops.js";

/**
 * A forward output and the builder of its backward pass: dx for an output gradient dy. Each
 * `backward` is called once, after the whole forward pass (so the nodes stay in topological order).
 */
export interface Traced {
  y: string;
  backward: (dy: string) => string;
}

/** What the layers of a LLaMA-style decoder share while the graph is built. */
export interface DecoderLayerContext {
  g: GraphBuilder;
  /** core's description of the model type (norms, attention, fused projections, windows). */
  o: DecoderOptions;
  /** "model." or "" before `layers.N`. */
  prefix: string;
  intermediate: number;
  batch: string;
  seq: string;
  rope: HeadTransform;
  /** The additive causal mask of a sliding window (or none), built once per window. */
  maskFor(window: number | undefined): string;
  weight(name: string): Promise<string>;
  /** The frozen nn.Linear `module` with its LoRA inputs, if adapted. */
  linear(module: string): Promise<FrozenLinear>;
  /** Whether a parameter (checkpoint or graph name) is trained: every one with full fine-tuning, else PEFT's trained biases. */
  trains(name: string): boolean;
  /** Takes one contribution to a trained parameter's gradient. */
  gradient(name: string, value: string): void;
}

/** RMSNorm with the weight of `module`; Gemma's x·(1 + w) as one Add, whose output the backward uses too. */
export async function rmsNorm(ctx: DecoderLayerContext, module: string, x: string): Promise<Traced> {
  const { g, o } = ctx;
  const scope = moduleScope(module);
  const stored = await ctx.weight(`${module}.weight`);
  const weight = o.normOffset ? g.one(scope, "Add", [stored, g.constFloat(o.normOffset)]) : stored;
  const { y, saved } = rmsNormForward(g, scope, x, weight, o.eps);
  return {
    y,
    backward: (dy) => {
      if (ctx.trains(stored)) ctx.gradient(stored, rmsNormWeightGradient(g, scope, saved, dy));
      return rmsNormBackward(g, scope, saved, weight, dy);
    },
  };
}

async function linear(ctx: DecoderLayerContext, module: string, x: string): Promise<Traced> {
  const layer = await ctx.linear(module);
  const { y, saved } = linearForward(ctx.g, layer, x);
  return {
    y,
    backward: (dy) => {
      if (ctx.trains(layer.weight) || (layer.bias && ctx.trains(layer.bias))) {
        const grads = linearParameterGradients(ctx.g, layer, saved, dy);
        if (ctx.trains(layer.weight)) ctx.gradient(layer.weight, grads.weight);
        if (layer.bias && grads.bias && ctx.trains(layer.bias)) ctx.gradient(layer.bias, grads.bias);
      }
      return linearBackward(ctx.g, layer, saved, dy);
    },
  };
}

/**
 * Projections of one input x: the separate modules `parent.parts[i]`, or (Phi-3) the one fused
 * module `parent.fused` whose output is split by columns into `sizes` — LoRA on the fused module,
 * as PEFT applies it. The backward takes the parts' gradients: summed, or concatenated for the
 * fused module's backward.
 */
async function project(
  ctx: DecoderLayerContext,
  x: string,
  p: { parent: string; parts: string[]; fused: string; sizes: number[] },
): Promise<{ ys: string[]; backward: (dys: string[]) => string }> {
  const { g } = ctx;
  const gradScope = `/grad${moduleScope(p.parent)}`;
  if (ctx.o.fused) {
    const module = `${p.parent}.${p.fused}`;
    const whole = await linear(ctx, module, x);
    const ys = g.op(moduleScope(module), "Split", [whole.y, g.constInts(p.sizes)], { axis: 1 }, p.sizes.length);
    return { ys, backward: (dys) => whole.backward(g.one(`/grad${moduleScope(module)}`, "Concat", dys, { axis: 1 })) };
  }
  const parts: Traced[] = [];
  for (const part of p.parts) parts.push(await linear(ctx, `${p.parent}.${part}`, x));
  return {
    ys: parts.map((t) => t.y),
    backward: (dys) => parts.map((t, i) => t.backward(dys[i]!)).reduce((sum, dx) => g.one(gradScope, "Add", [sum, dx])),
  };
}

/** Self-attention of layer `index` on its normalised input: q/k/v (or qkv), attention, o_proj. */
async function selfAttention(ctx: DecoderLayerContext, index: number, parent: string, x: string): Promise<Traced> {
  const { g, o } = ctx;
  const kvSize = o.kvHeads * o.headDim;
  const qkv = await project(ctx, x, { parent, parts: ["q_proj", "k_proj", "v_proj"], fused: "qkv_proj", sizes: [o.heads * o.headDim, kvSize, kvSize] });
  const spec: AttentionSpec = {
    scope: moduleScope(parent),
    heads: o.heads,
    kvHeads: o.kvHeads,
    headDim: o.headDim,
    batch: ctx.batch,
    seq: ctx.seq,
    mask: ctx.maskFor(o.windowOf(index)),
    scale: o.attentionScale,
    softcap: o.attentionSoftcap,
    rope: ctx.rope,
  };
  const [q, k, v] = qkv.ys;
  const attention = attentionForward(g, spec, q!, k!, v!);
  const out = await linear(ctx, `${parent}.o_proj`, attention.y);
  return {
    y: out.y,
    backward: (dy) => {
      const { dq, dk, dv } = attentionBackward(g, spec, attention.saved, out.backward(dy));
      return qkv.backward([dq, dk, dv]);
    },
  };
}

/** The gated MLP down(act(gate(x)) ⊙ up(x)) (SwiGLU, GeGLU), gate and up fused or not. */
async function gatedMlp(ctx: DecoderLayerContext, parent: string, x: string): Promise<Traced> {
  const { g, o } = ctx;
  const gateUp = await project(ctx, x, { parent, parts: ["gate_proj", "up_proj"], fused: "gate_up_proj", sizes: [ctx.intermediate, ctx.intermediate] });
  const [gate, up] = gateUp.ys;
  const act = activationForward(g, moduleScope(`${parent}.act_fn`), o.act, gate!);
  const down = await linear(ctx, `${parent}.down_proj`, g.one(moduleScope(parent), "Mul", [act.y, up!]));
  return {
    y: down.y,
    backward: (dy) => {
      const s = `/grad${moduleScope(parent)}`;
      const dProduct = down.backward(dy);
      const dGate = g.one(s, "Mul", [g.one(s, "Mul", [dProduct, up!]), act.derivative()]);
      return gateUp.backward([dGate, g.one(s, "Mul", [dProduct, act.y])]);
    },
  };
}

/** h + f(h), f the composition of `steps`; the backward is dh = dy + fᵀ(dy). */
async function residual(g: GraphBuilder, scope: string, h: string, steps: ((x: string) => Promise<Traced>)[]): Promise<Traced> {
  const traced: Traced[] = [];
  let x = h;
  for (const step of steps) {
    const t = await step(x);
    traced.push(t);
    x = t.y;
  }
  return {
    y: g.one(scope, "Add", [h, x]),
    backward: (dy) => g.one(`/grad${scope}`, "Add", [dy, traced.reduceRight((d, t) => t.backward(d), dy)]),
  };
}

/**
 * Decoder layer `index` on the residual stream h [tokens, hidden], as core's DecoderOptions
 * describes it: h += attn(norm(h)); h += mlp(norm(h)) — with Gemma-2's sandwich norms
 * h += norm(attn(norm(h))); h += norm(mlp(norm(h))).
 */
export async function decoderLayer(ctx: DecoderLayerContext, index: number, h: string): Promise<Traced> {
  const b = `${ctx.prefix}layers.${index}`;
  const norm = (name: string) => (x: string) => rmsNorm(ctx, `${b}.${name}`, x);
  const sandwich = ctx.o.sandwichNorms;
  const attention = await residual(ctx.g, moduleScope(b), h, [
    norm("input_layernorm"),
    (x) => selfAttention(ctx, index, `${b}.self_attn`, x),
    ...(sandwich ? [norm("post_attention_layernorm")] : []),
  ]);
  const mlp = await residual(ctx.g, moduleScope(b), attention.y, [
    norm(sandwich ? "pre_feedforward_layernorm" : "post_attention_layernorm"),
    (x) => gatedMlp(ctx, `${b}.mlp`, x),
    ...(sandwich ? [norm("post_feedforward_layernorm")] : []),
  ]);
  return { y: mlp.y, backward: (dy) => attention.backward(mlp.backward(dy)) };
}
