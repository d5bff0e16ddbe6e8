import { activationOp } from "../training/activation-ops.js";
import { LowrankError } from "@lowrank/core";
import { moduleScope } from "../onnx/locate-weights.js";
import { linearForward } from "../training/lora-linear-ops.js";
import {
  checkEncoderActivation,
  detectPrefix,
  ENCODER_IDS,
  ENCODER_MASK,
  FLOAT32_MIN,
  firstToken,
  frozenLinear,
  layerNorm,
  linear,
  maskColumn,
  sequencePositions,
  type EncoderBody,
  type EncoderContext,
} from "./encoder-context.js";
import type { RelativePositionParams } from "@lowrank/core/internal";
import { relativeRowTables } from "./deberta-relative-position.js";

/** `pos_att_type` as a list (configs write it as a list or as "p2c|c2p"). */
function positionTerms(value: unknown): string[] {
  const list = typeof value === "string" ? value.toLowerCase().split("|") : Array.isArray(value) ? value : [];
  return list.filter((t): t is string => typeof t === "string").map((t) => t.trim());
}

/** One forward pass's relative-position inputs, shared by every layer. */
interface RelativeInputs {
  /** The (normalised) table rows 0 … 2·span − 1, [2·span, hidden]. */
  table: string;
  rows: number;
  /** Gather indexes [batch, heads, seq, seq] of c2p (rows: queries) and p2c (rows: keys). */
  c2pIndex?: string;
  p2cIndex?: string;
}

/** Table rows per (row, column) pair of a `seq`-token input, [batch, heads, seq, seq]. */
function pairIndex(ctx: EncoderContext, scope: string, distance: string, limit: number, rows: number[], heads: number): string {
  const { g } = ctx;
  const clamped = g.one(scope, "Min", [g.one(scope, "Max", [distance, g.constInts([-limit])]), g.constInts([limit])]);
  const index = g.one(scope, "Gather", [g.ints(`lowrank::relative_rows_${scope.slice(1)}`, rows), g.one(scope, "Add", [clamped, g.constInts([limit])])]);
  return g.one(scope, "Expand", [index, g.one(scope, "Concat", [ctx.batch, g.constInts([heads]), ctx.seq, ctx.seq], { axis: 0 })]);
}

/** The configuration of one DeBERTa-v2 model, read once. */
interface DebertaSpec {
  heads: number;
  headDim: number;
  c2p: boolean;
  p2c: boolean;
  shareKey: boolean;
  scale: number;
  relative?: RelativeInputs;
}

/**
 * A projection of the hidden states [tokens, hidden], and of the position table when the term needs
 * it. With share_att_key the table goes through the same module: both are stacked into one Gemm,
 * so a runtime LoRA slot or a merge on that module acts on both, as PEFT's wrapped layer does.
 */
async function project(
  ctx: EncoderContext,
  spec: DebertaSpec,
  module: string,
  posModule: string,
  h: string,
  needsTable: boolean,
): Promise<{ x: string; pos?: string }> {
  const { g } = ctx;
  const rel = spec.relative;
  if (!rel || !needsTable) return { x: await linear(ctx, module, h) };
  if (!spec.shareKey) return { x: await linear(ctx, module, h), pos: await linear(ctx, posModule, rel.table) };
  const layer = await frozenLinear(ctx, module);
  const both = linearForward(g, layer, g.one(layer.scope, "Concat", [h, rel.table], { axis: 0 })).y;
  return {
    x: g.one(layer.scope, "Slice", [both, g.constInts([0]), g.constInts([-rel.rows]), g.constInts([0])]),
    pos: g.one(layer.scope, "Slice", [both, g.constInts([-rel.rows]), g.constInts([2 ** 62]), g.constInts([0])]),
  };
}

/**
 * transformers' DisentangledSelfAttention (eager): content→content plus content→position (queries
 * against the key-projected table) and position→content (keys against the query-projected table),
 * each over √(d·factor), gathered at each pair's table row; XSoftmax over the pairs of real tokens.
 * h [tokens, hidden] → context [tokens, heads·d] (before attention.output.dense).
 */
async function disentangledAttention(ctx: EncoderContext, spec: DebertaSpec, block: string, h: string, keep: string): Promise<string> {
  const { g } = ctx;
  const a = `${block}.attention.self`;
  const s = moduleScope(a);
  const { heads, headDim: d } = spec;
  const q = await project(ctx, spec, `${a}.query_proj`, `${a}.pos_query_proj`, h, spec.p2c);
  const k = await project(ctx, spec, `${a}.key_proj`, `${a}.pos_key_proj`, h, spec.c2p);
  const v = await linear(ctx, `${a}.value_proj`, h);
  const split = (x: string, perm: number[]) =>
    g.one(s, "Transpose", [g.one(s, "Reshape", [x, g.one(s, "Concat", [ctx.batch, ctx.seq, g.constInts([heads, d])], { axis: 0 })])], { perm });
  // A projected table [2·span, heads·d] as [heads, d, 2·span].
  const tableT = (x: string) => g.one(s, "Transpose", [g.one(s, "Reshape", [x, g.constInts([-1, heads, d])])], { perm: [1, 2, 0] });
  const scale = g.constFloat(spec.scale);
  const q4 = split(q.x, [0, 2, 1, 3]);
  let scores = g.one(s, "Div", [g.one(s, "MatMul", [q4, split(k.x, [0, 2, 3, 1])]), scale]);
  const rel = spec.relative;
  if (rel?.c2pIndex && k.pos) {
    const byRow = g.one(s, "MatMul", [q4, tableT(k.pos)]);
    scores = g.one(s, "Add", [scores, g.one(s, "Div", [g.one(s, "GatherElements", [byRow, rel.c2pIndex], { axis: 3 }), scale])]);
  }
  if (rel?.p2cIndex && q.pos) {
    const byRow = g.one(s, "MatMul", [split(k.x, [0, 2, 1, 3]), tableT(q.pos)]);
    const p2c = g.one(s, "Transpose", [g.one(s, "GatherElements", [byRow, rel.p2cIndex], { axis: 3 })], { perm: [0, 1, 3, 2] });
    scores = g.one(s, "Add", [scores, g.one(s, "Div", [p2c, scale])]);
  }
  // XSoftmax: masked scores filled with float32's minimum, softmax, then zeroed.
  const probs = g.one(s, "Softmax", [g.one(s, "Where", [keep, scores, g.constFloat(FLOAT32_MIN)])], { axis: -1 });
  const context = g.one(s, "MatMul", [g.one(s, "Where", [keep, probs, g.constFloat(0)]), split(v, [0, 2, 1, 3])]);
  return g.one(s, "Reshape", [g.one(s, "Transpose", [context], { perm: [0, 2, 1, 3] }), g.constInts([-1, heads * d])]);
}

/** The relative-position table and gather indexes, when relative_attention is on. */
async function relativeInputs(
  ctx: EncoderContext,
  prefix: string,
  eps: number,
  heads: number,
  c2p: boolean,
  p2c: boolean,
): Promise<RelativeInputs | undefined> {
  const { g, c, label } = ctx;
  if (!c.boolean("relative_attention", false)) return undefined;
  const maxRelative = c.number("max_relative_positions", -1);
  const maxPosition = maxRelative < 1 ? c.number("max_position_embeddings") : maxRelative;
  const buckets = c.number("position_buckets", -1);
  const params: RelativePositionParams = { buckets, maxPosition, span: buckets > 0 ? buckets : maxPosition };
  const name = `${prefix}encoder.rel_embeddings.weight`;
  const stored = ctx.shapeOf(name)?.[0];
  if (stored === undefined)
    throw new LowrankError("CHECKPOINT_INVALID", `${label}: config.json \`relative_attention\` is true but the checkpoint has no "${name}"`);
  const rows = 2 * params.span;
  if (stored < rows)
    throw new LowrankError(
      "CHECKPOINT_INVALID",
      `${label}: encoder.rel_embeddings has ${stored} rows, but \`position_buckets\` / \`max_relative_positions\` need ${rows}`,
    );
  const s = "/relative_position";
  let table = await ctx.weight(name);
  if (stored > rows) table = g.one(s, "Slice", [table, g.constInts([0]), g.constInts([rows]), g.constInts([0])]);
  const norms = c
    .string("norm_rel_ebd", "none")
    .toLowerCase()
    .split("|")
    .map((x) => x.trim());
  if (norms.includes("layer_norm")) table = await layerNorm(ctx, `${prefix}encoder.LayerNorm`, table, eps);
  const positions = sequencePositions(ctx, s);
  // distance[i, j] = i − j.
  const distance = g.one(s, "Sub", [g.one(s, "Unsqueeze", [positions, g.constInts([1])]), g.one(s, "Unsqueeze", [positions, g.constInts([0])])]);
  const tables = relativeRowTables(params);
  return {
    table,
    rows,
    c2pIndex: c2p ? pairIndex(ctx, `${s}/c2p`, distance, tables.limit, tables.c2p, heads) : undefined,
    p2cIndex: p2c ? pairIndex(ctx, `${s}/p2c`, distance, tables.limit, tables.p2c, heads) : undefined,
  };
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
  const { g, c } = ctx;
  const prefix = detectPrefix(ctx, ["deberta.", ""], "embeddings.word_embeddings.weight");
  const hidden = c.number("hidden_size");
  const heads = c.number("num_attention_heads");
  const headDim = c.number("attention_head_size", Math.floor(hidden / heads));
  const eps = c.number("layer_norm_eps", 1e-7);
  const act = c.string("hidden_act", "gelu");
  checkEncoderActivation(ctx, act, "hidden_act");
  const terms = positionTerms(ctx.config.pos_att_type);
  const c2p = terms.includes("c2p");
  const p2c = terms.includes("p2c");
  const spec: DebertaSpec = {
    heads,
    headDim,
    c2p,
    p2c,
    shareKey: c.boolean("share_att_key", false),
    // transformers counts the position terms in the scale even when relative_attention is off.
    scale: Math.sqrt(headDim * (1 + Number(c2p) + Number(p2c))),
    relative: await relativeInputs(ctx, prefix, eps, heads, c2p, p2c),
  };
  const mask = maskColumn(ctx, "/mask");
  // XSoftmax's mask: query i and key j both real, [batch, 1, seq, seq].
  const real = (axes: number[]) => g.one("/mask", "Cast", [g.one("/mask", "Unsqueeze", [ENCODER_MASK, g.constInts(axes)])], { to: 9 });
  const keep = g.one("/mask", "And", [real([1, 3]), real([1, 2])]);
  const embedded = await embed(ctx, prefix, eps, mask);
  const conv = c.number("conv_kernel_size", 0) > 0;
  let h = embedded;
  for (let i = 0; i < c.number("num_hidden_layers"); i++) {
    const b = `${prefix}encoder.layer.${i}`;
    const attended = await linear(ctx, `${b}.attention.output.dense`, await disentangledAttention(ctx, spec, b, h, keep));
    const a = await layerNorm(ctx, `${b}.attention.output.LayerNorm`, g.one(moduleScope(`${b}.attention.output`), "Add", [attended, h]), eps);
    const inner = activationOp(g, moduleScope(`${b}.intermediate.intermediate_act_fn`), act, await linear(ctx, `${b}.intermediate.dense`, a));
    h = await layerNorm(ctx, `${b}.output.LayerNorm`, g.one(moduleScope(`${b}.output`), "Add", [await linear(ctx, `${b}.output.dense`, inner), a]), eps);
    if (i === 0 && conv) h = await convolve(ctx, prefix, eps, embedded, h, mask, hidden);
  }
  if (!ctx.has("classifier.weight") || !ctx.has("pooler.dense.weight")) return { hidden: h, width: hidden };
  const poolerAct = c.string("pooler_hidden_act", "gelu");
  checkEncoderActivation(ctx, poolerAct, "pooler_hidden_act");
  const pooled = activationOp(g, moduleScope("pooler.activation"), poolerAct, await linear(ctx, "pooler.dense", firstToken(ctx, h, hidden)));
  const labels = ctx.shapeOf("classifier.weight")?.[0] ?? 0;
  return { hidden: h, width: hidden, head: { logits: await linear(ctx, "classifier", pooled), labels } };
}
