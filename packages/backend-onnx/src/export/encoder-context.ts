import { LowrankError } from "@lowrank/core";
import { moduleScope } from "../onnx/locate-weights.js";
import { INFERENCE_ACTIVATIONS } from "../training/activation-ops.js";
import { linearForward, type FrozenLinear } from "../training/lora-linear-ops.js";
import { layerNormForward } from "../training/norm-ops.js";
import type { CheckpointSource } from "./checkpoint-source.js";

/** The graph inputs of an encoder graph. */
export const ENCODER_IDS = "input_ids";
export const ENCODER_MASK = "attention_mask";

/** float32's smallest value, which transformers adds to (BERT) or writes into (DeBERTa) masked scores. */
export const FLOAT32_MIN = -3.4028234663852886e38;

/** What the encoder architectures share while they build. */
export interface EncoderContext extends CheckpointSource {
  /** Dynamic dims as 1-D int64 tensors of one element. */
  batch: string;
  seq: string;
}

/** An architecture's contribution: hidden states [tokens, width] and, with a head, logits [batch, labels]. */
export interface EncoderBody {
  hidden: string;
  width: number;
  head?: { logits: string; labels: number };
}

/** The first of `candidates` under which `key` exists (transformers' base_model_prefix, or none). */
export function detectPrefix(ctx: EncoderContext, candidates: readonly string[], key: string): string {
  const prefix = candidates.find((p) => ctx.has(`${p}${key}`));
  if (prefix === undefined)
    throw new LowrankError(
      "CHECKPOINT_INVALID",
      `${ctx.label}: missing tensor "${key}" (looked under the prefixes ${candidates.map((p) => JSON.stringify(p)).join(", ")})`,
    );
  return prefix;
}

/** An nn.Linear ([out, in] weight, optional bias) in its module's scope. */
export async function frozenLinear(ctx: EncoderContext, module: string): Promise<FrozenLinear> {
  return {
    scope: moduleScope(module),
    weight: await ctx.weight(`${module}.weight`),
    bias: ctx.has(`${module}.bias`) ? await ctx.weight(`${module}.bias`) : undefined,
    layout: "out_in",
  };
}

/** y = x·Wᵀ + b: one Gemm in the module's scope, on 2-D x [tokens, in]. */
export async function linear(ctx: EncoderContext, module: string, x: string): Promise<string> {
  return linearForward(ctx.g, await frozenLinear(ctx, module), x).y;
}

/** nn.LayerNorm over the last axis, one LayerNormalization node in the module's scope. */
export async function layerNorm(ctx: EncoderContext, module: string, x: string, eps: number): Promise<string> {
  return layerNormForward(ctx.g, moduleScope(module), x, await ctx.weight(`${module}.weight`), await ctx.weight(`${module}.bias`), eps).y;
}

/** Checks a config activation up front, naming the field. */
export function checkEncoderActivation(ctx: EncoderContext, name: string, key: string): void {
  if (!(INFERENCE_ACTIVATIONS as readonly string[]).includes(name))
    throw new LowrankError(
      "CHECKPOINT_INVALID",
      `${ctx.label}: config.json \`${key}\` "${name}" is not supported by the onnx backend (supported: ${INFERENCE_ACTIVATIONS.join(", ")})`,
    );
}

/** hidden [tokens, width] → [batch, sequence, width]. */
export function unflatten(ctx: EncoderContext, scope: string, x: string, width: number): string {
  const { g } = ctx;
  return g.one(scope, "Reshape", [x, g.one(scope, "Concat", [ctx.batch, ctx.seq, g.constInts([width])], { axis: 0 })]);
}

/** The first token's hidden state of each row, [batch, width] (transformers' hidden_states[:, 0]). */
export function firstToken(ctx: EncoderContext, hidden: string, width: number): string {
  const { g } = ctx;
  const s = "/first_token";
  const first = g.one(s, "Slice", [unflatten(ctx, s, hidden, width), g.constInts([0]), g.constInts([1]), g.constInts([1])]);
  return g.one(s, "Reshape", [first, g.constInts([-1, width])]);
}

/** 0, 1, …, seq − 1 as int64 [seq]. */
export function sequencePositions(ctx: EncoderContext, scope: string): string {
  const { g } = ctx;
  const scalar = (x: string) => g.one(scope, "Squeeze", [x, g.constInts([0])]);
  return g.one(scope, "Range", [scalar(g.constInts([0])), scalar(ctx.seq), scalar(g.constInts([1]))]);
}

/** The attention mask as float32 [tokens, 1] (1 for real tokens, 0 for padding). */
export function maskColumn(ctx: EncoderContext, scope: string): string {
  const { g } = ctx;
  return g.one(scope, "Reshape", [g.one(scope, "Cast", [ENCODER_MASK], { to: 1 }), g.constInts([-1, 1])]);
}
