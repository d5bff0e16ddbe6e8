import { activationOp } from "../training/activation-ops.js";
import { LowrankError } from "@lowrank/core";
import { moduleScope } from "../onnx/locate-weights.js";
import { disentangledForward, keepPairs, relativeIndexes, stackedProjection, type DisentangledSpec } from "../training/disentangled-attention-ops.js";
import { debertaSettings, relativeTable, type DebertaSettings } from "./deberta-config.js";
import {
  checkEncoderActivation,
  detectPrefix,
  ENCODER_IDS,
  ENCODER_MASK,
  firstToken,
  frozenLinear,
  layerNorm,
  linear,
  maskColumn,
  sequencePositions,
  type EncoderBody,
  type EncoderContext,
} from "./encoder-context.js";

/** One forward pass's relative-position inputs, shared by every layer. */
interface RelativeInputs {
  /** The (normalised) table rows 0 … 2·span − 1, [2·span, hidden]. */
  table: string;
  rows: number;
  /** Gather indexes [batch, heads, seq, seq] of c2p (rows: queries) and p2c (rows: keys). */
  c2pIndex?: string;
  p2cIndex?: string;
}

/**
 * A projection of the hidden states [tokens, hidden], and of the position table when the term needs
 * it: through the same module with share_att_key (stackedProjection), else through pos_query_proj /
 * pos_key_proj.
 */
async function project(
  ctx: EncoderContext,
  p: { settings: DebertaSettings; relative?: RelativeInputs },
  module: string,
  posModule: string,
  h: string,
  needsTable: boolean,
): Promise<{ x: string; pos?: string }> {
  const rel = p.relative;
  if (!rel || !needsTable) return { x: await linear(ctx, module, h) };
  if (!p.settings.shareKey) return { x: await linear(ctx, module, h), pos: await linear(ctx, posModule, rel.table) };
  return stackedProjection(ctx.g, await frozenLinear(ctx, module), h, rel.table, rel.rows);
}

/** transformers' DisentangledSelfAttention (disentangledForward) of one layer: h [tokens, hidden] → context [tokens, heads·d]. */
async function disentangledAttention(
  ctx: EncoderContext,
  p: { settings: DebertaSettings; relative?: RelativeInputs; keep: string },
  block: string,
  h: string,
): Promise<string> {
  const a = `${block}.attention.self`;
  const { settings, relative } = p;
  const q = await project(ctx, p, `${a}.query_proj`, `${a}.pos_query_proj`, h, settings.p2c);
  const k = await project(ctx, p, `${a}.key_proj`, `${a}.pos_key_proj`, h, settings.c2p);
  const v = await linear(ctx, `${a}.value_proj`, h);
  const spec: DisentangledSpec = {
    scope: moduleScope(a),
    heads: settings.heads,
    headDim: settings.headDim,
    batch: ctx.batch,
    seq: ctx.seq,
    scale: settings.scale,
    keep: p.keep,
    rows: relative?.rows,
    c2pIndex: relative?.c2pIndex,
    p2cIndex: relative?.p2cIndex,
  };
  return disentangledForward(ctx.g, spec, { q: q.x, k: k.x, v, posQ: q.pos, posK: k.pos }).y;
}

/** The relative-position table (sliced to the rows used, LayerNorm'd when norm_rel_ebd says so) and gather indexes, when relative_attention is on. */
async function relativeInputs(ctx: EncoderContext, settings: DebertaSettings, prefix: string): Promise<RelativeInputs | undefined> {
  const { g } = ctx;
  const stored = relativeTable(settings, { label: ctx.label, prefix, shapeOf: ctx.shapeOf });
  if (!stored || !settings.relative) return undefined;
  const { rows, params, normalise } = settings.relative;
  let table = await ctx.weight(stored.name);
  if (stored.stored > rows) table = g.one("/relative_position", "Slice", [table, g.constInts([0]), g.constInts([rows]), g.constInts([0])]);
  if (normalise) table = await layerNorm(ctx, `${prefix}encoder.LayerNorm`, table, settings.eps);
  const { c2p, p2c, heads } = settings;
  return { table, rows, ...relativeIndexes(g, { batch: ctx.batch, seq: ctx.seq, heads, params, c2p, p2c }) };
}

/** DebertaV2Embeddings: word (+ positions, + token types) → embed_proj → LayerNorm → ×mask, [tokens, hidden]. */
async function embed(ctx: EncoderContext, prefix: string, eps: number, mask: string): Promise<string> {
  const { g, c } = ctx;
  const e = `${prefix}embeddings`;
  const width = ctx.shapeOf(`${e}.word_embeddings.weight`)?.[1] ?? 0;
  let h = g.one(moduleScope(`${e}.word_embeddings`), "Gather", [await ctx.weight(`${e}.word_embeddings.weight`), ENCODER_IDS]);
  if (c.boolean("position_biased_input", true)) {
    const table = await ctx.weight(`${e}.position_embeddings.weight`);
    h = g.one(moduleScope(e), "Add", [h, g.one(moduleScope(`${e}.position_embeddings`), "Gather", [table, sequencePositions(ctx, moduleScope(e))])]);
  }
  if (ctx.has(`${e}.token_type_embeddings.weight`)) {
    // token_type_ids default to zeros: row 0 for every token.
    const table = await ctx.weight(`${e}.token_type_embeddings.weight`);
    h = g.one(moduleScope(e), "Add", [h, g.one(moduleScope(`${e}.token_type_embeddings`), "Gather", [table, g.constInts([0])])]);
  }
  h = g.one(moduleScope(e), "Reshape", [h, g.constInts([-1, width])]);
  if (ctx.has(`${e}.embed_proj.weight`)) h = await linear(ctx, `${e}.embed_proj`, h);
  return g.one(moduleScope(e), "Mul", [await layerNorm(ctx, `${e}.LayerNorm`, h, eps), mask]);
}

/**
 * transformers' ConvLayer after the first layer: Conv1d over the sequence of the encoder input,
 * masked, activation, LayerNorm with the first layer's output as residual, masked again.
 */
async function convolve(ctx: EncoderContext, prefix: string, eps: number, input: string, residual: string, mask: string, hidden: number): Promise<string> {
  const { g, c, label } = ctx;
  const kernel = c.number("conv_kernel_size");
  const m = `${prefix}encoder.conv`;
  if (kernel % 2 === 0)
    throw new LowrankError(
      "CHECKPOINT_INVALID",
      `${label}: config.json \`conv_kernel_size\` ${kernel} is even; transformers' ConvLayer only keeps the sequence length for odd sizes`,
    );
  for (const key of [`${m}.conv.weight`, `${m}.LayerNorm.weight`])
    if (!ctx.has(key))
      throw new LowrankError("CHECKPOINT_INVALID", `${label}: config.json \`conv_kernel_size\` is ${kernel} but the checkpoint has no "${key}"`);
  const act = c.string("conv_act", "tanh");
  checkEncoderActivation(ctx, act, "conv_act");
  const s = moduleScope(`${m}.conv`);
  const pad = (kernel - 1) / 2;
  const channels = g.one(s, "Transpose", [g.one(s, "Reshape", [input, g.one(s, "Concat", [ctx.batch, ctx.seq, g.constInts([hidden])], { axis: 0 })])], {
    perm: [0, 2, 1],
  });
  const inputs = [channels, await ctx.weight(`${m}.conv.weight`), ...(ctx.has(`${m}.conv.bias`) ? [await ctx.weight(`${m}.conv.bias`)] : [])];
  const conv = g.one(s, "Conv", inputs, { group: c.number("conv_groups", 1), kernel_shape: [kernel], pads: [pad, pad], strides: [1], dilations: [1] });
  const out = g.one(s, "Mul", [g.one(s, "Reshape", [g.one(s, "Transpose", [conv], { perm: [0, 2, 1] }), g.constInts([-1, hidden])]), mask]);
  const normed = await layerNorm(ctx, `${m}.LayerNorm`, g.one(moduleScope(m), "Add", [residual, activationOp(g, moduleScope(`${m}.conv_act`), act, out)]), eps);
  return g.one(moduleScope(m), "Mul", [normed, mask]);
}

/**
 * DeBERTa-v2 and v3 (model_type "deberta-v2") as transformers 4.43 computes them: embeddings →
 * LayerNorm → ×mask; post-LayerNorm blocks with disentangled attention (c2p and/or p2c against the
 * relative-position table with log buckets, LayerNorm'd when norm_rel_ebd says so, projected by the
 * layer's own query_proj / key_proj when share_att_key, else pos_query_proj / pos_key_proj); the
 * convolution after the first layer when conv_kernel_size > 0; and, when the checkpoint has them,
 * ContextPooler (first token → dense → pooler_hidden_act) → classifier.
 */
export async function debertaBody(ctx: EncoderContext): Promise<EncoderBody> {
  const { g } = ctx;
  const prefix = detectPrefix(ctx, ["deberta.", ""], "embeddings.word_embeddings.weight");
  const settings = debertaSettings(ctx.config, ctx.label);
  const { hidden, eps, act } = settings;
  checkEncoderActivation(ctx, act, "hidden_act");
  const relative = await relativeInputs(ctx, settings, prefix);
  const mask = maskColumn(ctx, "/mask");
  const attention = { settings, relative, keep: keepPairs(g, ENCODER_MASK) };
  const embedded = await embed(ctx, prefix, eps, mask);
  let h = embedded;
  for (let i = 0; i < settings.layers; i++) {
    const b = `${prefix}encoder.layer.${i}`;
    const attended = await linear(ctx, `${b}.attention.output.dense`, await disentangledAttention(ctx, attention, b, h));
    const a = await layerNorm(ctx, `${b}.attention.output.LayerNorm`, g.one(moduleScope(`${b}.attention.output`), "Add", [attended, h]), eps);
    const inner = activationOp(g, moduleScope(`${b}.intermediate.intermediate_act_fn`), act, await linear(ctx, `${b}.intermediate.dense`, a));
    h = await layerNorm(ctx, `${b}.output.LayerNorm`, g.one(moduleScope(`${b}.output`), "Add", [await linear(ctx, `${b}.output.dense`, inner), a]), eps);
    if (i === 0 && settings.convKernel > 0) h = await convolve(ctx, prefix, eps, embedded, h, mask, hidden);
  }
  if (!ctx.has("classifier.weight") || !ctx.has("pooler.dense.weight")) return { hidden: h, width: hidden };
  checkEncoderActivation(ctx, settings.poolerAct, "pooler_hidden_act");
  const pooled = activationOp(g, moduleScope("pooler.activation"), settings.poolerAct, await linear(ctx, "pooler.dense", firstToken(ctx, h, hidden)));
  const labels = ctx.shapeOf("classifier.weight")?.[0] ?? 0;
  return { hidden: h, width: hidden, head: { logits: await linear(ctx, "classifier", pooled), labels } };
}
