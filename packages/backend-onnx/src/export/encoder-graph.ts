import { activationOp } from "../training/activation-ops.js";
import { LowrankError } from "@lowrank/core";
import { floatValueInfo, ONNX_INT64, type ModelProto } from "../onnx/onnx-codec.js";
import { moduleScope } from "../onnx/locate-weights.js";
import { attentionForward, type AttentionSpec } from "../training/attention-ops.js";
import { fromCheckpoint, inferenceModel } from "./checkpoint-source.js";
import { debertaBody } from "./deberta-ops.js";
import {
  checkEncoderActivation,
  detectPrefix,
  ENCODER_IDS,
  ENCODER_MASK,
  FLOAT32_MIN,
  firstToken,
  layerNorm,
  linear,
  sequencePositions,
  unflatten,
  type EncoderBody,
  type EncoderContext,
} from "./encoder-context.js";

/** The model types buildEncoderGraph builds. */
export const ONNX_ENCODER_MODEL_TYPES = ["bert", "roberta", "xlm-roberta", "deberta-v2"] as const;

/**
 * RoBERTa's position ids from the ids (transformers' create_position_ids_from_input_ids): real
 * tokens numbered from padding_idx + 1, padding at padding_idx. int64 [batch, seq].
 */
function robertaPositions(ctx: EncoderContext, scope: string, padId: number): string {
  const { g } = ctx;
  const real = g.one(scope, "Cast", [g.one(scope, "Not", [g.one(scope, "Equal", [ENCODER_IDS, g.constInts([padId])])])], { to: ONNX_INT64 });
  const axis = g.one(scope, "Squeeze", [g.constInts([1]), g.constInts([0])]);
  return g.one(scope, "Add", [g.one(scope, "Mul", [g.one(scope, "CumSum", [real, axis]), real]), g.constInts([padId])]);
}

/**
 * BERT, RoBERTa and XLM-R (transformers' BertModel / RobertaModel, eager attention): word + token
 * type (token_type_ids all 0) + absolute position embeddings, LayerNorm, post-LayerNorm blocks,
 * additive padding mask over the keys; then RoBERTa's classification head (classifier.dense → tanh
 * → classifier.out_proj on the first token), or BERT's pooler → classifier, or no head.
 */
async function bertBody(ctx: EncoderContext, modelType: string): Promise<EncoderBody> {
  const { g, c, label } = ctx;
  const prefix = detectPrefix(ctx, ["roberta.", "bert.", ""], "embeddings.word_embeddings.weight");
  const hidden = c.number("hidden_size");
  const heads = c.number("num_attention_heads");
  const eps = c.number("layer_norm_eps", 1e-12);
  const act = c.string("hidden_act", "gelu");
  checkEncoderActivation(ctx, act, "hidden_act");
  const positionType = c.string("position_embedding_type", "absolute");
  if (positionType !== "absolute")
    throw new LowrankError(
      "CHECKPOINT_INVALID",
      `${label}: config.json \`position_embedding_type\` "${positionType}" is not supported by the onnx backend (only "absolute")`,
    );
  const e = `${prefix}embeddings`;
  const es = moduleScope(e);
  const padId = c.number("pad_token_id", modelType === "bert" ? 0 : 1);
  let h = g.one(moduleScope(`${e}.word_embeddings`), "Gather", [await ctx.weight(`${e}.word_embeddings.weight`), ENCODER_IDS]);
  if (ctx.has(`${e}.token_type_embeddings.weight`)) {
    const table = await ctx.weight(`${e}.token_type_embeddings.weight`);
    h = g.one(es, "Add", [h, g.one(moduleScope(`${e}.token_type_embeddings`), "Gather", [table, g.constInts([0])])]);
  }
  const positions = modelType === "bert" ? sequencePositions(ctx, es) : robertaPositions(ctx, es, padId);
  h = g.one(es, "Add", [h, g.one(moduleScope(`${e}.position_embeddings`), "Gather", [await ctx.weight(`${e}.position_embeddings.weight`), positions])]);
  h = await layerNorm(ctx, `${e}.LayerNorm`, g.one(es, "Reshape", [h, g.constInts([-1, hidden])]), eps);
  // transformers' extended attention mask: (1 − mask)·float32 min, [batch, 1, 1, seq].
  const real = g.one("/mask", "Cast", [g.one("/mask", "Unsqueeze", [ENCODER_MASK, g.constInts([1, 2])])], { to: 1 });
  const bias = g.one("/mask", "Mul", [g.one("/mask", "Sub", [g.constFloat(1), real]), g.constFloat(FLOAT32_MIN)]);
  const headDim = hidden / heads;
  for (let i = 0; i < c.number("num_hidden_layers"); i++) {
    const b = `${prefix}encoder.layer.${i}`;
    const self = `${b}.attention.self`;
    const spec: AttentionSpec = {
      scope: moduleScope(self),
      heads,
      kvHeads: heads,
      headDim,
      batch: ctx.batch,
      seq: ctx.seq,
      mask: bias,
      scale: 1 / Math.sqrt(headDim),
    };
    const [q, k, v] = [await linear(ctx, `${self}.query`, h), await linear(ctx, `${self}.key`, h), await linear(ctx, `${self}.value`, h)];
    const attended = await linear(ctx, `${b}.attention.output.dense`, attentionForward(g, spec, q, k, v).y);
    h = await layerNorm(ctx, `${b}.attention.output.LayerNorm`, g.one(moduleScope(`${b}.attention.output`), "Add", [attended, h]), eps);
    const inner = activationOp(g, moduleScope(`${b}.intermediate.intermediate_act_fn`), act, await linear(ctx, `${b}.intermediate.dense`, h));
    h = await layerNorm(ctx, `${b}.output.LayerNorm`, g.one(moduleScope(`${b}.output`), "Add", [await linear(ctx, `${b}.output.dense`, inner), h]), eps);
  }
  if (ctx.has("classifier.dense.weight")) {
    const dense = g.one(moduleScope("classifier"), "Tanh", [await linear(ctx, "classifier.dense", firstToken(ctx, h, hidden))]);
    const logits = await linear(ctx, "classifier.out_proj", dense);
    return { hidden: h, width: hidden, head: { logits, labels: ctx.shapeOf("classifier.out_proj.weight")?.[0] ?? 0 } };
  }
  if (ctx.has("classifier.weight") && ctx.has(`${prefix}pooler.dense.weight`)) {
    const pooled = g.one(moduleScope(`${prefix}pooler.activation`), "Tanh", [await linear(ctx, `${prefix}pooler.dense`, firstToken(ctx, h, hidden))]);
    return { hidden: h, width: hidden, head: { logits: await linear(ctx, "classifier", pooled), labels: ctx.shapeOf("classifier.weight")?.[0] ?? 0 } };
  }
  return { hidden: h, width: hidden };
}

/**
 * Builds the inference graph (opset 17, standard ops) of a Hugging Face encoder checkpoint — BERT,
 * RoBERTa, XLM-R, DeBERTa-v2/v3; safetensors in any float type, sharded or not — as transformers
 * 4.43 computes it: inputs input_ids and attention_mask [batch, sequence] (int64; token_type_ids
 * are taken as all 0), outputs last_hidden_state [batch, sequence, hidden] and, for a
 * sequence-classification checkpoint, logits [batch, num_labels]. Weights are float32
 * initializers under their PyTorch names; every nn.Linear is one Gemm in its module's scope and
 * every embedding lookup a Gather in its own, so runtime adapters and merges find them.
 * @throws LowrankError CHECKPOINT_INVALID for another model type, a missing tensor or config field,
 * an unsupported activation or position-embedding type.
 * @example
 * const session = await OnnxLoraSession.create(encodeModel(await buildEncoderGraph(dir)), { modelDir: dir, adapters: { a } });
 */
export async function buildEncoderGraph(dir: string): Promise<ModelProto> {
  return fromCheckpoint(dir, ONNX_ENCODER_MODEL_TYPES, "ONNX encoder graph builder", async (source) => {
    const { g } = source;
    const shape = g.one("/dims", "Shape", [ENCODER_IDS]);
    const ctx: EncoderContext = {
      ...source,
      batch: g.one("/dims", "Slice", [shape, g.constInts([0]), g.constInts([1])]),
      seq: g.one("/dims", "Slice", [shape, g.constInts([1]), g.constInts([2])]),
    };
    const body = source.modelType === "deberta-v2" ? await debertaBody(ctx) : await bertBody(ctx, source.modelType);
    g.renameOutput(unflatten(ctx, "/last_hidden_state", body.hidden, body.width), "last_hidden_state");
    const output = [floatValueInfo("last_hidden_state", ["batch", "sequence", body.width])];
    if (body.head) {
      g.renameOutput(body.head.logits, "logits");
      output.unshift(floatValueInfo("logits", ["batch", body.head.labels]));
    }
    const input = [floatValueInfo(ENCODER_IDS, ["batch", "sequence"], ONNX_INT64), floatValueInfo(ENCODER_MASK, ["batch", "sequence"], ONNX_INT64)];
    return inferenceModel(g, `lowrank_${source.modelType}_encoder`, input, output);
  });
}
