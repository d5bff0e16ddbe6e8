import { LowrankError } from "@lowrank/core";
import { debertaSettings, relativeTable, tableRowsThrough, type DebertaSettings } from "../export/deberta-config.js";
import { moduleScope } from "../onnx/locate-weights.js";
import { floatValueInfo, ONNX_INT64 } from "../onnx/onnx-codec.js";
import { activationForward, TRAINABLE_ACTIVATIONS } from "./activation-ops.js";
import { convLayer } from "./conv-layer-ops.js";
import { CLASSIFICATION_INPUTS, CLASSIFICATION_OUTPUTS, classificationLoss } from "./classification-loss-ops.js";
import {
  disentangledBackward,
  disentangledForward,
  keepPairs,
  relativeIndexes,
  splitRows,
  stackedProjection,
  stackRows,
  type DisentangledSaved,
  type DisentangledSpec,
} from "./disentangled-attention-ops.js";
import { embeddingGradient, positionEmbeddingGradient } from "./embedding-ops.js";
import { ATTENTION_MASK_INPUT } from "./encoder-training-graph.js";
import { encoderLayers, firstRows, firstRowsBackward, type EncoderLayers, type SavedLinear } from "./encoder-layers.js";
import { tokenEmbeddingLora } from "./lora-embedding-ops.js";
import { linearForward } from "./lora-linear-ops.js";
import { loraInputs } from "./lora-plan.js";
import type { NormSaved } from "./norm-ops.js";
import { IDS_INPUT, sequenceDims, type ArchitectureContext, type TrainingArchitecture } from "./training-graph.js";

/** The model types debertaTraining trains for sequence classification (DeBERTa-v3 checkpoints are "deberta-v2" too). */
export const DEBERTA_TRAINING_MODEL_TYPES = ["deberta-v2"] as const;

/** The blocks' linears (pos_*_proj: only where the attention uses them, see tableRowsThrough). */
const BLOCK_LINEARS = String.raw`encoder\.layer\.\d+\.(attention\.self\.(query|key|value|pos_query|pos_key)_proj|attention\.output\.dense|intermediate\.dense|output\.dense)`;
/** The modules the trainer puts LoRA on: the blocks' linears, embed_proj, the pooler, the classifier, the token embedding. */
const LORA_MODULES = new RegExp(String.raw`(^|\.)(${BLOCK_LINEARS}|embeddings\.(embed_proj|word_embeddings)|pooler\.dense|classifier)$`);

/**
 * A projection of the hidden states [tokens, ·] and, when its position term is on, of the table
 * [rows, ·]: the module alone ("plain"), one linear over both stacked (share_att_key), or the module
 * and its own pos_*_proj ("separate").
 */
type Projection = { x: string; pos?: string } & (
  | { kind: "plain"; own: SavedLinear }
  | { kind: "stacked"; both: SavedLinear; rows: number }
  | { kind: "separate"; own: SavedLinear; ofTable: SavedLinear }
);

interface BlockSaved {
  spec: DisentangledSpec;
  attention: DisentangledSaved;
  query: Projection;
  key: Projection;
  /** value_proj, attention.output.dense, intermediate.dense, output.dense. */
  linears: [SavedLinear, SavedLinear, SavedLinear, SavedLinear];
  attnNorm: NormSaved;
  outNorm: NormSaved;
  derivative: () => string;
}

/**
 * DeBERTa-v2 and v3 for sequence classification (transformers' DebertaV2ForSequenceClassification,
 * as the tfjs backend and the encoder inference graph compute it, sharing the inference graph's
 * config reading and disentangled attention): word (+ positions, + token type 0) embeddings →
 * embed_proj → LayerNorm → ×mask; post-LayerNorm blocks with disentangled attention (c2p / p2c
 * against the LayerNorm'd relative-position table, projected by the layer's own query_proj /
 * key_proj with share_att_key — so their LoRA also acts on the table, as in PEFT — else by
 * pos_query_proj / pos_key_proj); ContextPooler (first token → pooler.dense → pooler_hidden_act) →
 * classifier; the mean cross-entropy against `labels` (classificationLoss). Inputs and outputs as
 * encoderTraining's.
 *
 * LoRA on any block linear but pos_*_proj, embed_proj, the pooler, the classifier and the token
 * embedding. Every checkpoint tensor the run trains (`ctx.trains`: modules_to_save, trained biases,
 * or every tensor with `full`, the relative-position table and its LayerNorm included) gets its
 * gradient through `ctx.gradient`.
 * @throws LowrankError CHECKPOINT_INVALID naming the config.json field the trainer cannot train
 * (an activation it lacks).
 */
export function debertaTraining(modelType: string, config: Record<string, unknown>, label: string): TrainingArchitecture {
  if (!(DEBERTA_TRAINING_MODEL_TYPES as readonly string[]).includes(modelType))
    throw new LowrankError("CHECKPOINT_INVALID", `${label}: model_type ${JSON.stringify(modelType)} is not a DeBERTa the onnx trainer trains`);
  const settings = debertaSettings(config, label);
  const convAct = typeof config.conv_act === "string" ? config.conv_act : "tanh";
  for (const [key, act] of [
    ["hidden_act", settings.act],
    ["pooler_hidden_act", settings.poolerAct],
    ...(settings.convKernel > 0 ? [["conv_act", convAct] as const] : []),
  ] as const)
    if (!(TRAINABLE_ACTIVATIONS as readonly string[]).includes(act))
      throw new LowrankError(
        "CHECKPOINT_INVALID",
        `${label}: config.json \`${key}\` "${act}" is not supported by the onnx trainer (supported: ${TRAINABLE_ACTIVATIONS.join(", ")})`,
      );
  return {
    supports: (module) => LORA_MODULES.test(module) && (!/\.pos_(query|key)_proj$/.test(module) || tableRowsThrough(settings, module) !== undefined),
    inputRows: (module) => tableRowsThrough(settings, module),
    build: (ctx) => buildDeberta(ctx, settings, convAct),
    inputs: [floatValueInfo(ATTENTION_MASK_INPUT, ["batch", "sequence"], ONNX_INT64), floatValueInfo(CLASSIFICATION_INPUTS.labels, ["batch"], ONNX_INT64)],
    outputs: [floatValueInfo(CLASSIFICATION_OUTPUTS.logits, ["batch", "labels"])],
  };
}

/** The relative-position table of one forward pass: the stored tensor, the rows used (LayerNorm'd when norm_rel_ebd says so). */
interface TableSaved {
  weight: string;
  stored: number;
  rows: number;
  table: string;
  norm?: { module: string; saved: NormSaved };
}

/** The table the position terms read (sliced to the rows used, LayerNorm'd when norm_rel_ebd says so), or undefined without them. */
async function relativeTableOf(ctx: ArchitectureContext, settings: DebertaSettings, layers: EncoderLayers, prefix: string): Promise<TableSaved | undefined> {
  const { g } = ctx;
  // Without a position term (pos_att_type) nothing reads the table.
  if (!settings.c2p && !settings.p2c) return undefined;
  const found = relativeTable(settings, { label: ctx.label, prefix, shapeOf: ctx.shapeOf });
  if (!found || !settings.relative) return undefined;
  const { rows, normalise } = settings.relative;
  const weight = await ctx.weight(found.name);
  let table = found.stored > rows ? g.one("/relative_position", "Slice", [weight, g.constInts([0]), g.constInts([rows]), g.constInts([0])]) : weight;
  let norm: TableSaved["norm"];
  if (normalise) {
    const module = `${prefix}encoder.LayerNorm`;
    const normed = await layers.layerNorm(module, table);
    table = normed.y;
    norm = { module, saved: normed.saved };
  }
  return { weight, stored: found.stored, rows, table, norm };
}

async function buildDeberta(ctx: ArchitectureContext, settings: DebertaSettings, convAct: string): Promise<void> {
  const { g, label } = ctx;
  const prefix = ["deberta.", ""].find((p) => ctx.has(`${p}embeddings.word_embeddings.weight`));
  if (prefix === undefined)
    throw new LowrankError("CHECKPOINT_INVALID", `${label}: missing tensor "embeddings.word_embeddings.weight" (under deberta. or none)`);
  if (!ctx.has("classifier.weight") || !ctx.has("pooler.dense.weight"))
    throw new LowrankError(
      "CHECKPOINT_INVALID",
      `${label}: no sequence-classification head (pooler.dense + classifier): train --task seq-cls from a DebertaV2ForSequenceClassification checkpoint`,
    );
  const { hidden, heads, headDim } = settings;
  const lora = loraInputs(g, ctx.slots, { dropout: ctx.dropout });
  const dims = sequenceDims(g);
  const { batch, seq, seqScalar } = dims;
  const layers = encoderLayers(ctx, { lora, dims, eps: settings.eps });
  const { linear, linearBack, normBack } = layers;
  const maskColumn = g.one("/mask", "Reshape", [g.one("/mask", "Cast", [ATTENTION_MASK_INPUT], { to: 1 }), g.constInts([-1, 1])]);
  const keep = keepPairs(g, ATTENTION_MASK_INPUT);

  // DebertaV2Embeddings: word (+ positions 0 … seq − 1, + token type 0) → embed_proj → LayerNorm → ×mask, on [tokens, ·].
  const e = `${prefix}embeddings`;
  const es = moduleScope(e);
  const word = await ctx.weight(`${e}.word_embeddings.weight`);
  const width = ctx.shapeOf(`${e}.word_embeddings.weight`)?.[1] ?? hidden;
  let embedded = g.one(moduleScope(`${e}.word_embeddings`), "Gather", [word, IDS_INPUT]);
  const one = (v: number) => g.one(es, "Squeeze", [g.constInts([v]), g.constInts([0])]);
  const positions = settings.positionBiased ? g.one(es, "Range", [one(0), seqScalar, one(1)]) : undefined;
  const positionTable = positions ? await ctx.weight(`${e}.position_embeddings.weight`) : undefined;
  if (positions && positionTable) embedded = g.one(es, "Add", [embedded, g.one(moduleScope(`${e}.position_embeddings`), "Gather", [positionTable, positions])]);
  const tokenType = ctx.has(`${e}.token_type_embeddings.weight`) ? await ctx.weight(`${e}.token_type_embeddings.weight`) : undefined;
  if (tokenType) embedded = g.one(es, "Add", [embedded, g.one(moduleScope(`${e}.token_type_embeddings`), "Gather", [tokenType, g.constInts([0])])]);
  let flat = g.one(es, "Reshape", [embedded, g.constInts([-1, width])]);
  const wordLora = tokenEmbeddingLora(g, {
    module: `${e}.word_embeddings`,
    scope: moduleScope(`${e}.word_embeddings`),
    slots: ctx.slots,
    lora,
    ids: IDS_INPUT,
  });
  if (wordLora) flat = g.one(es, "Add", [flat, wordLora.y]);
  let embedProj: SavedLinear | undefined;
  if (ctx.has(`${e}.embed_proj.weight`)) {
    const layer = await linear(`${e}.embed_proj`);
    const projected = linearForward(g, layer, flat);
    embedProj = { layer, saved: projected.saved };
    flat = projected.y;
  }
  const embedNorm = `${e}.LayerNorm`;
  const embeddings = await layers.layerNorm(embedNorm, flat);
  let h = g.one(es, "Mul", [embeddings.y, maskColumn]);

  const table = await relativeTableOf(ctx, settings, layers, prefix);
  const indexes = table ? relativeIndexes(g, { batch, seq, heads, params: settings.relative!.params, c2p: settings.c2p, p2c: settings.p2c }) : {};
  const project = async (module: string, posModule: string, x: string, needsTable: boolean): Promise<Projection> => {
    const layer = await linear(module);
    if (table && needsTable && settings.shareKey) {
      const both = stackedProjection(g, layer, x, table.table, table.rows);
      return { kind: "stacked", x: both.x, pos: both.pos, both: { layer, saved: both.saved }, rows: table.rows };
    }
    const y = linearForward(g, layer, x);
    if (!table || !needsTable) return { kind: "plain", x: y.y, own: { layer, saved: y.saved } };
    const posLayer = await linear(posModule);
    const pos = linearForward(g, posLayer, table.table);
    return { kind: "separate", x: y.y, pos: pos.y, own: { layer, saved: y.saved }, ofTable: { layer: posLayer, saved: pos.saved } };
  };

  const blocks: BlockSaved[] = [];
  const blockInput = h;
  let conv: Awaited<ReturnType<typeof convLayer>> | undefined;
  for (let i = 0; i < settings.layers; i++) {
    const b = `${prefix}encoder.layer.${i}`;
    const a = `${b}.attention.self`;
    const query = await project(`${a}.query_proj`, `${a}.pos_query_proj`, h, settings.p2c);
    const key = await project(`${a}.key_proj`, `${a}.pos_key_proj`, h, settings.c2p);
    const [value, attnOut, intermediate, output] = [
      await linear(`${a}.value_proj`),
      await linear(`${b}.attention.output.dense`),
      await linear(`${b}.intermediate.dense`),
      await linear(`${b}.output.dense`),
    ];
    const v = linearForward(g, value, h);
    const spec: DisentangledSpec = { scope: moduleScope(a), heads, headDim, batch, seq, scale: settings.scale, keep, rows: table?.rows, ...indexes };
    const attention = disentangledForward(g, spec, { q: query.x, k: key.x, v: v.y, posQ: query.pos, posK: key.pos });
    const attended = linearForward(g, attnOut, attention.y);
    const attnNorm = await layers.layerNorm(`${b}.attention.output.LayerNorm`, g.one(moduleScope(`${b}.attention.output`), "Add", [attended.y, h]));
    const inner = linearForward(g, intermediate, attnNorm.y);
    const activation = activationForward(g, moduleScope(`${b}.intermediate.intermediate_act_fn`), settings.act, inner.y);
    const out = linearForward(g, output, activation.y);
    const outNorm = await layers.layerNorm(`${b}.output.LayerNorm`, g.one(moduleScope(`${b}.output`), "Add", [out.y, attnNorm.y]));
    h = outNorm.y;
    // transformers' ConvLayer after the first layer: over the first layer's input, its output the residual.
    if (i === 0 && settings.convKernel > 0) {
      const spec = {
        module: `${prefix}encoder.conv`,
        kernel: settings.convKernel,
        groups: typeof ctx.config.conv_groups === "number" ? ctx.config.conv_groups : 1,
        act: convAct,
        hidden,
        batch,
        seq,
        maskColumn,
      };
      conv = await convLayer(ctx, layers, spec, blockInput, h);
      h = conv.y;
    }
    blocks.push({
      spec,
      attention: attention.saved,
      query,
      key,
      attnNorm: attnNorm.saved,
      outNorm: outNorm.saved,
      derivative: activation.derivative,
      linears: [
        { layer: value, saved: v.saved },
        { layer: attnOut, saved: attended.saved },
        { layer: intermediate, saved: inner.saved },
        { layer: output, saved: out.saved },
      ],
    });
  }

  // ContextPooler → classifier on the first token.
  const dense = await linear("pooler.dense", { firstTokenOnly: true });
  const classifier = await linear("classifier", { firstTokenOnly: true });
  const pooled = linearForward(g, dense, firstRows(g, dims, h, hidden));
  const poolerAct = activationForward(g, moduleScope("pooler.activation"), settings.poolerAct, pooled.y);
  const logits = linearForward(g, classifier, poolerAct.y);
  const loss = classificationLoss(g, logits.y);
  if (!ctx.gradients) return;

  // Backward: activation gradients through the frozen weights; LoRA gradients, and those of the
  // trained checkpoint tensors, become outputs. Unused nodes (a frozen table's gradient) are pruned.
  const dActivated = linearBack({ layer: classifier, saved: logits.saved }, loss.dLogits());
  const dPooled = g.one(`/grad${moduleScope("pooler.activation")}`, "Mul", [dActivated, poolerAct.derivative()]);
  let dh = firstRowsBackward(g, dims, linearBack({ layer: dense, saved: pooled.saved }, dPooled), hidden);
  const dTable: string[] = [];
  // dx of one projection for the hidden states' gradient dx and the table's dPos; the table's share goes to dTable.
  const projectionBack = (p: Projection, dx: string, dPos: string | undefined): string => {
    if (p.kind === "plain" || !dPos) {
      if (p.kind === "stacked") throw new Error(`${p.both.layer.scope}: a stacked projection without its table's gradient`);
      return linearBack(p.own, dx);
    }
    if (p.kind === "separate") {
      dTable.push(linearBack(p.ofTable, dPos));
      return linearBack(p.own, dx);
    }
    const s = `/grad${p.both.layer.scope}`;
    const both = splitRows(g, s, linearBack(p.both, stackRows(g, s, dx, dPos)), p.rows);
    dTable.push(both.pos);
    return both.x;
  };
  let dConvInput: string | undefined;
  for (let i = settings.layers - 1; i >= 0; i--) {
    const b = `${prefix}encoder.layer.${i}`;
    const block = blocks[i]!;
    if (i === 0 && conv) {
      const d = await conv.backward(dh);
      dh = d.dResidual;
      dConvInput = d.dInput;
    }
    const [value, attnOut, intermediate, output] = block.linears;
    const dOut = await normBack(`${b}.output.LayerNorm`, block.outNorm, dh);
    const dInner = g.one(`/grad${moduleScope(`${b}.intermediate.intermediate_act_fn`)}`, "Mul", [linearBack(output, dOut), block.derivative()]);
    const dAttnNormed = g.one(`/grad${moduleScope(`${b}.output`)}`, "Add", [dOut, linearBack(intermediate, dInner)]);
    const dAttended = await normBack(`${b}.attention.output.LayerNorm`, block.attnNorm, dAttnNormed);
    const d = disentangledBackward(g, block.spec, block.attention, linearBack(attnOut, dAttended));
    const s = `/grad${moduleScope(`${b}.attention`)}`;
    const dq = projectionBack(block.query, d.dq, d.dPosQ);
    const dk = projectionBack(block.key, d.dk, d.dPosK);
    dh = g.one(s, "Add", [g.one(s, "Add", [g.one(s, "Add", [dAttended, dq]), dk]), linearBack(value, d.dv)]);
  }
  if (dConvInput) dh = g.one(`/grad${moduleScope(`${prefix}encoder.conv`)}`, "Add", [dh, dConvInput]);

  if (table && dTable.length > 0) {
    const s = "/grad/relative_position";
    let dRows = dTable.reduce((sum, part) => g.one(s, "Add", [sum, part]));
    if (table.norm) dRows = await normBack(table.norm.module, table.norm.saved, dRows);
    if (ctx.trains(table.weight)) {
      const pads = g.constInts([0, 0, table.stored - table.rows, 0]);
      ctx.gradient(table.weight, table.stored > table.rows ? g.one(s, "Pad", [dRows, pads]) : dRows);
    }
  }
  const dNormed = await normBack(embedNorm, embeddings.saved, g.one(`/grad${es}`, "Mul", [dh, maskColumn]));
  const dEmbedded = embedProj ? linearBack(embedProj, dNormed) : dNormed;
  wordLora?.backward(dEmbedded);
  if (ctx.trains(word)) ctx.gradient(word, embeddingGradient(g, moduleScope(`${e}.word_embeddings`), word, IDS_INPUT, dEmbedded));
  if (positions && positionTable && ctx.trains(positionTable)) {
    const p = { table: positionTable, positions, seq, hidden: width };
    ctx.gradient(positionTable, positionEmbeddingGradient(g, moduleScope(`${e}.position_embeddings`), p, dEmbedded));
  }
  if (tokenType && ctx.trains(tokenType)) {
    const scope = moduleScope(`${e}.token_type_embeddings`);
    const summed = g.one(`/grad${scope}`, "ReduceSum", [dEmbedded, g.constInts([0])], { keepdims: 1 });
    ctx.gradient(tokenType, embeddingGradient(g, scope, tokenType, g.constInts([0]), summed));
  }
}
