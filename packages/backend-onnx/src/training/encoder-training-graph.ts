import { LowrankError } from "@lowrank/core";
import { ENCODER_MASK, FLOAT32_MIN } from "../export/encoder-context.js";
import type { GraphBuilder } from "../export/graph-builder.js";
import { floatValueInfo, ONNX_INT64 } from "../onnx/onnx-codec.js";
import { moduleScope } from "../onnx/locate-weights.js";
import { activationForward, TRAINABLE_ACTIVATIONS } from "./activation-ops.js";
import { attentionBackward, attentionForward, type AttentionSaved, type AttentionSpec } from "./attention-ops.js";
import { CLASSIFICATION_INPUTS, CLASSIFICATION_OUTPUTS, classificationLoss } from "./classification-loss-ops.js";
import { embeddingGradient, positionEmbeddingGradient } from "./embedding-ops.js";
import { tokenEmbeddingLora } from "./lora-embedding-ops.js";
import { encoderLayers, firstRows, firstRowsBackward, type SavedLinear } from "./encoder-layers.js";
import { linearForward } from "./lora-linear-ops.js";
import { loraInputs } from "./lora-plan.js";
import type { NormSaved } from "./norm-ops.js";
import { IDS_INPUT, sequenceDims, type ArchitectureContext, type TrainingArchitecture } from "./training-graph.js";

/** The encoder model types the ONNX trainer trains for sequence classification. */
export const ENCODER_TRAINING_MODEL_TYPES = ["bert", "roberta", "xlm-roberta"] as const;

/** The graph input of the padding mask (int64 [batch, sequence], 1 for real tokens), as the encoder inference graph names it. */
export const ATTENTION_MASK_INPUT = ENCODER_MASK;

/** The modules the encoder trainer puts LoRA on: every linear of the blocks and the head, and the token embedding. */
const LORA_MODULES =
  /(^|\.)(encoder\.layer\.\d+\.(attention\.self\.(query|key|value)|attention\.output\.dense|intermediate\.dense|output\.dense)|pooler\.dense|classifier(\.dense|\.out_proj)?|embeddings\.word_embeddings)$/;

interface BlockSaved {
  spec: AttentionSpec;
  attention: AttentionSaved;
  /** query, key, value, attention.output.dense, intermediate.dense, output.dense. */
  linears: [SavedLinear, SavedLinear, SavedLinear, SavedLinear, SavedLinear, SavedLinear];
  attnNorm: NormSaved;
  outNorm: NormSaved;
  derivative: () => string;
}

/**
 * RoBERTa's position ids from the ids (transformers' create_position_ids_from_input_ids): real
 * tokens numbered from padding_idx + 1, padding at padding_idx. int64 [batch, seq].
 */
function robertaPositions(g: GraphBuilder, scope: string, padId: number): string {
  const real = g.one(scope, "Cast", [g.one(scope, "Not", [g.one(scope, "Equal", [IDS_INPUT, g.constInts([padId])])])], { to: ONNX_INT64 });
  const axis = g.one(scope, "Squeeze", [g.constInts([1]), g.constInts([0])]);
  return g.one(scope, "Add", [g.one(scope, "Mul", [g.one(scope, "CumSum", [real, axis]), real]), g.constInts([padId])]);
}

/**
 * BERT, RoBERTa and XLM-R for sequence classification (transformers' BertForSequenceClassification /
 * RobertaForSequenceClassification, as the tfjs backend and the encoder inference graph compute
 * them): word + token type 0 + absolute position embeddings (RoBERTa's numbered from the padding
 * index), LayerNorm, post-LayerNorm blocks with the additive padding mask of the graph input
 * `attention_mask`, then RoBERTa's classifier.dense → tanh → classifier.out_proj on the first token
 * or BERT's pooler → classifier; the mean cross-entropy against `labels` (classificationLoss).
 *
 * The graph's inputs are `input_ids`, `attention_mask` (int64 [batch, sequence]) and `labels` (int64
 * [batch]) besides the LoRA ones; its outputs `loss`, `tokens` (the rows), `logits` [batch, labels]
 * and the gradients.
 *
 * LoRA on any block linear, the pooler, the head's linears and the token embedding. Every checkpoint
 * tensor the run trains (`ctx.trains`: PEFT's modules_to_save — the classifier, and the pooler when
 * listed — trained biases, or every tensor with `full`) gets its gradient through `ctx.gradient`.
 */
export function encoderTraining(modelType: string, config: Record<string, unknown>, label: string): TrainingArchitecture {
  if (!(ENCODER_TRAINING_MODEL_TYPES as readonly string[]).includes(modelType))
    throw new LowrankError("CHECKPOINT_INVALID", `${label}: model_type ${JSON.stringify(modelType)} is not an encoder the onnx trainer trains`);
  const act = typeof config.hidden_act === "string" ? config.hidden_act : "gelu";
  if (!(TRAINABLE_ACTIVATIONS as readonly string[]).includes(act))
    throw new LowrankError(
      "CHECKPOINT_INVALID",
      `${label}: config.json \`hidden_act\` "${act}" is not supported by the onnx trainer (supported: ${TRAINABLE_ACTIVATIONS.join(", ")})`,
    );
  const positionType = typeof config.position_embedding_type === "string" ? config.position_embedding_type : "absolute";
  if (positionType !== "absolute")
    throw new LowrankError(
      "CHECKPOINT_INVALID",
      `${label}: config.json \`position_embedding_type\` "${positionType}" is not supported by the onnx trainer (only "absolute")`,
    );
  return {
    supports: (module) => LORA_MODULES.test(module),
    build: (ctx) => buildEncoder(ctx, modelType, act),
    inputs: [floatValueInfo(ATTENTION_MASK_INPUT, ["batch", "sequence"], ONNX_INT64), floatValueInfo(CLASSIFICATION_INPUTS.labels, ["batch"], ONNX_INT64)],
    outputs: [floatValueInfo(CLASSIFICATION_OUTPUTS.logits, ["batch", "labels"])],
  };
}

async function buildEncoder(ctx: ArchitectureContext, modelType: string, act: string): Promise<void> {
  const { g, label } = ctx;
  const prefix = ["roberta.", "bert.", ""].find((p) => ctx.has(`${p}embeddings.word_embeddings.weight`));
  if (prefix === undefined)
    throw new LowrankError("CHECKPOINT_INVALID", `${label}: missing tensor "embeddings.word_embeddings.weight" (under roberta., bert. or none)`);
  const hidden = ctx.num("hidden_size");
  const heads = ctx.num("num_attention_heads");
  const layers = ctx.num("num_hidden_layers");
  const eps = ctx.num("layer_norm_eps", 1e-12);
  const padId = ctx.num("pad_token_id", modelType === "bert" ? 0 : 1);
  const robertaHead = ctx.has("classifier.dense.weight");
  if (!robertaHead && !(ctx.has("classifier.weight") && ctx.has(`${prefix}pooler.dense.weight`)))
    throw new LowrankError(
      "CHECKPOINT_INVALID",
      `${label}: no sequence-classification head (classifier.dense / classifier.out_proj, or ${prefix}pooler.dense + classifier): ` +
        `train --task seq-cls from a *ForSequenceClassification checkpoint`,
    );
  const lora = loraInputs(g, ctx.slots, { dropout: ctx.dropout });
  const dims = sequenceDims(g);
  const { batch, seq, seqScalar } = dims;

  // Embeddings: word + token type 0 + positions, then LayerNorm, on [tokens, hidden].
  const e = `${prefix}embeddings`;
  const es = moduleScope(e);
  const word = await ctx.weight(`${e}.word_embeddings.weight`);
  const positionTable = await ctx.weight(`${e}.position_embeddings.weight`);
  const tokenType = ctx.has(`${e}.token_type_embeddings.weight`) ? await ctx.weight(`${e}.token_type_embeddings.weight`) : undefined;
  const one = (v: number) => g.one(es, "Squeeze", [g.constInts([v]), g.constInts([0])]);
  const positions = modelType === "bert" ? g.one(es, "Range", [one(0), seqScalar, one(1)]) : robertaPositions(g, es, padId);
  let embedded = g.one(es, "Add", [
    g.one(moduleScope(`${e}.word_embeddings`), "Gather", [word, IDS_INPUT]),
    g.one(moduleScope(`${e}.position_embeddings`), "Gather", [positionTable, positions]),
  ]);
  if (tokenType) embedded = g.one(es, "Add", [embedded, g.one(moduleScope(`${e}.token_type_embeddings`), "Gather", [tokenType, g.constInts([0])])]);
  let flat = g.one(es, "Reshape", [embedded, g.constInts([-1, hidden])]);
  const wordLora = tokenEmbeddingLora(g, {
    module: `${e}.word_embeddings`,
    scope: moduleScope(`${e}.word_embeddings`),
    slots: ctx.slots,
    lora,
    ids: IDS_INPUT,
  });
  if (wordLora) flat = g.one(es, "Add", [flat, wordLora.y]);
  const embedNorm = `${e}.LayerNorm`;
  const { linear, layerNorm, linearBack, normBack } = encoderLayers(ctx, { lora, dims, eps });
  const embeddings = await layerNorm(embedNorm, flat);
  let h = embeddings.y;

  // transformers' extended attention mask: (1 − mask)·float32 min over the keys, [batch, 1, 1, seq].
  const real = g.one("/mask", "Cast", [g.one("/mask", "Unsqueeze", [ATTENTION_MASK_INPUT, g.constInts([1, 2])])], { to: 1 });
  const mask = g.one("/mask", "Mul", [g.one("/mask", "Sub", [g.constFloat(1), real]), g.constFloat(FLOAT32_MIN)]);

  const headDim = hidden / heads;
  const blocks: BlockSaved[] = [];
  for (let i = 0; i < layers; i++) {
    const b = `${prefix}encoder.layer.${i}`;
    const self = `${b}.attention.self`;
    const [query, key, value] = [await linear(`${self}.query`), await linear(`${self}.key`), await linear(`${self}.value`)];
    const attnOut = await linear(`${b}.attention.output.dense`);
    const intermediate = await linear(`${b}.intermediate.dense`);
    const output = await linear(`${b}.output.dense`);
    const spec: AttentionSpec = { scope: moduleScope(self), heads, kvHeads: heads, headDim, batch, seq, mask, scale: 1 / Math.sqrt(headDim) };
    const q = linearForward(g, query, h);
    const k = linearForward(g, key, h);
    const v = linearForward(g, value, h);
    const attention = attentionForward(g, spec, q.y, k.y, v.y);
    const attended = linearForward(g, attnOut, attention.y);
    const attnNorm = await layerNorm(`${b}.attention.output.LayerNorm`, g.one(moduleScope(`${b}.attention.output`), "Add", [attended.y, h]));
    h = attnNorm.y;
    const inner = linearForward(g, intermediate, h);
    const activation = activationForward(g, moduleScope(`${b}.intermediate.intermediate_act_fn`), act, inner.y);
    const out = linearForward(g, output, activation.y);
    const outNorm = await layerNorm(`${b}.output.LayerNorm`, g.one(moduleScope(`${b}.output`), "Add", [out.y, h]));
    h = outNorm.y;
    blocks.push({
      spec,
      attention: attention.saved,
      attnNorm: attnNorm.saved,
      outNorm: outNorm.saved,
      derivative: activation.derivative,
      linears: [
        { layer: query, saved: q.saved },
        { layer: key, saved: k.saved },
        { layer: value, saved: v.saved },
        { layer: attnOut, saved: attended.saved },
        { layer: intermediate, saved: inner.saved },
        { layer: output, saved: out.saved },
      ],
    });
  }

  // The head on the first token: RoBERTa's dense → tanh → out_proj, or BERT's pooler (dense → tanh) → classifier.
  const [dense, project] = robertaHead
    ? [await linear("classifier.dense", { firstTokenOnly: true }), await linear("classifier.out_proj", { firstTokenOnly: true })]
    : [await linear(`${prefix}pooler.dense`, { firstTokenOnly: true }), await linear("classifier", { firstTokenOnly: true })];
  const first = firstRows(g, dims, h, hidden);
  const pooled = linearForward(g, dense, first);
  const tanh = g.one(robertaHead ? moduleScope("classifier") : moduleScope(`${prefix}pooler.activation`), "Tanh", [pooled.y]);
  const projected = linearForward(g, project, tanh);
  const loss = classificationLoss(g, projected.y);
  if (!ctx.gradients) return;

  // Backward: activation gradients through the frozen weights; LoRA gradients, and those of the
  // trained checkpoint tensors, become outputs. Unused nodes are pruned.
  const dTanh = linearBack({ layer: project, saved: projected.saved }, loss.dLogits());
  const ts = `/grad${robertaHead ? moduleScope("classifier") : moduleScope(`${prefix}pooler.activation`)}`;
  const dPooled = g.one(ts, "Mul", [dTanh, g.one(ts, "Sub", [g.constFloat(1), g.one(ts, "Mul", [tanh, tanh])])]);
  let dh = firstRowsBackward(g, dims, linearBack({ layer: dense, saved: pooled.saved }, dPooled), hidden);
  for (let i = layers - 1; i >= 0; i--) {
    const b = `${prefix}encoder.layer.${i}`;
    const block = blocks[i]!;
    const [query, key, value, attnOut, intermediate, output] = block.linears;
    const dOut = await normBack(`${b}.output.LayerNorm`, block.outNorm, dh);
    const dInner = g.one(`/grad${moduleScope(`${b}.intermediate.intermediate_act_fn`)}`, "Mul", [linearBack(output, dOut), block.derivative()]);
    const dAttnNormed = g.one(`/grad${moduleScope(`${b}.output`)}`, "Add", [dOut, linearBack(intermediate, dInner)]);
    const dAttended = await normBack(`${b}.attention.output.LayerNorm`, block.attnNorm, dAttnNormed);
    const { dq, dk, dv } = attentionBackward(g, block.spec, block.attention, linearBack(attnOut, dAttended));
    const s = `/grad${moduleScope(`${b}.attention`)}`;
    dh = g.one(s, "Add", [g.one(s, "Add", [g.one(s, "Add", [dAttended, linearBack(query, dq)]), linearBack(key, dk)]), linearBack(value, dv)]);
  }
  const dEmbedded = await normBack(embedNorm, embeddings.saved, dh);
  wordLora?.backward(dEmbedded);
  if (ctx.trains(word)) ctx.gradient(word, embeddingGradient(g, moduleScope(`${e}.word_embeddings`), word, IDS_INPUT, dEmbedded));
  if (ctx.trains(positionTable)) {
    const scope = moduleScope(`${e}.position_embeddings`);
    ctx.gradient(
      positionTable,
      modelType === "bert"
        ? positionEmbeddingGradient(g, scope, { table: positionTable, positions, seq, hidden }, dEmbedded)
        : embeddingGradient(g, scope, positionTable, positions, dEmbedded),
    );
  }
  if (tokenType && ctx.trains(tokenType)) {
    const scope = moduleScope(`${e}.token_type_embeddings`);
    const summed = g.one(`/grad${scope}`, "ReduceSum", [dEmbedded, g.constInts([0])], { keepdims: 1 });
    ctx.gradient(tokenType, embeddingGradient(g, scope, tokenType, g.constInts([0]), summed));
  }
}
