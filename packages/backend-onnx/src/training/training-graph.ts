import protobuf from "protobufjs";
import { Checkpoint, LowrankError } from "@lowrank/core";
import { GraphBuilder } from "../export/graph-builder.js";
import { floatValueInfo, ONNX_INT64, type ModelProto, type ValueInfoProto } from "../onnx/onnx-codec.js";
import { ONNX_PROTO } from "../onnx/onnx-proto.js";
import { LOSS_INPUTS, LOSS_OUTPUTS } from "./loss-ops.js";
import { dropoutMaskName, gradientName, SCALINGS_INPUT, slotTensors, type TrainingSlot } from "./lora-plan.js";
import { pruneGraph } from "./prune-graph.js";
import type { ExternalWeights } from "../onnx/external-weights.js";

const ModelProtoType = protobuf.parse(ONNX_PROTO, { keepCase: true }).root.lookupType("onnx.ModelProto");

/** The symbolic first dimension of a slot's dropout mask input. */
const maskRowsName = (s: TrainingSlot): string | number => (s.tokens === false ? (s.extraRows ?? 0) : s.extraRows ? "tokens_and_extra_rows" : "tokens");

/** The graph input of the token ids. */
export const IDS_INPUT = "input_ids";

/** The graph inputs of packed sequences (core's packExamples): each token's example and position in it, int64 [batch, sequence]. */
export const PACKED_INPUTS = { segments: "segment_ids", positions: "position_ids" } as const;

/** What an architecture's graph builder gets. */
export interface ArchitectureContext {
  g: GraphBuilder;
  config: Record<string, unknown>;
  label: string;
  slots: readonly TrainingSlot[];
  /** Whether LoRA inputs carry dropout masks. */
  dropout: boolean;
  /** False: forward and loss only (evaluation). */
  gradients: boolean;
  /** Packed sequences: attention within each segment, positions from PACKED_INPUTS.positions. */
  packed: boolean;
  /**
   * Activation recomputation (gradient checkpointing): the backward pass recomputes each block's
   * forward from the block's input (recomputedInput) instead of reading the activations of the first
   * forward pass, so only the blocks' inputs stay alive between the passes. Builders without blocks ignore it.
   */
  recompute: boolean;
  /**
   * Full fine-tuning: every checkpoint tensor `weight` reads is a trained graph input, and the
   * builder reports each one's gradient through `gradient`.
   */
  full: boolean;
  /**
   * Whether the checkpoint tensor `name` (or the graph name `weight` returned for it) is trained:
   * every one with `full`, else the tensors a LoRA run trains beside its factors (PEFT's `bias`).
   */
  trains(name: string): boolean;
  /** Adds a checkpoint tensor as a float32 initializer (or, `full`, a graph input), once, and returns its name. */
  weight(name: string): Promise<string>;
  /** One contribution to the gradient of trained parameter `name` (checkpoint or graph name; contributions are summed). */
  gradient(name: string, value: string): void;
  has(name: string): boolean;
  /** A checkpoint tensor's shape, or undefined when it has none of that name. */
  shapeOf(name: string): readonly number[] | undefined;
  /** A config number, or the fallback; a LowrankError naming config.json's key when missing. */
  num(key: string, fallback?: number): number;
}

/** An architecture: which modules take LoRA, and the builder of its loss-and-gradients graph. */
export interface TrainingArchitecture {
  supports(module: string): boolean;
  /** Rows a module reads beyond the batch's tokens, and whether it reads the tokens (TrainingSlot.extraRows, tokens); undefined for most. */
  inputRows?(module: string): { rows: number; tokens: boolean } | undefined;
  build(ctx: ArchitectureContext): Promise<void>;
  /** Graph inputs the builder reads besides the ids, the loss's and the LoRA ones (an encoder's `attention_mask`, `labels`), declared after `input_ids` when used. */
  inputs?: readonly ValueInfoProto[];
  /** Graph outputs besides `loss` and `tokens` (a classifier's `logits`), declared after them. */
  outputs?: readonly ValueInfoProto[];
}

/** Batch and sequence length as 1-D int64 tensors, the sequence length also as a scalar. */
export function sequenceDims(g: GraphBuilder): { batch: string; seq: string; seqScalar: string } {
  const s = "/dims";
  const shape = g.one(s, "Shape", [IDS_INPUT]);
  const batch = g.one(s, "Slice", [shape, g.constInts([0]), g.constInts([1])]);
  const seq = g.one(s, "Slice", [shape, g.constInts([1]), g.constInts([2])]);
  return { batch, seq, seqScalar: g.one(s, "Squeeze", [seq, g.constInts([0])]) };
}

/**
 * Block input `x` for a recomputed forward pass, read only once `after` (the block's output gradient,
 * the same shape) exists: Reshape to after's shape makes the recomputation wait for the backward pass
 * to reach the block (so its activations live only while that block's gradients are formed) without
 * changing a value. ONNX Runtime frees the first pass's activations once the next block has read them.
 */
export function recomputedInput(g: GraphBuilder, x: string, after: string): string {
  return g.one("/recompute", "Reshape", [x, g.one("/recompute", "Shape", [after])]);
}

/**
 * The additive causal mask [seq, seq]: 0 on and below the diagonal, float32's minimum above
 * (transformers' value) — and, with a sliding `window` (core's attentionWindow), also on keys
 * `window` or more positions before the query.
 */
export function causalMask(g: GraphBuilder, seq: string, window?: number): string {
  const s = "/mask";
  const full = g.one(s, "Expand", [g.constFloat(-3.4028234663852886e38), g.one(s, "Concat", [seq, seq], { axis: 0 })]);
  const future = g.one(s, "Trilu", [full, g.constInts([1])], { upper: 1 });
  if (window === undefined) return future;
  return g.one(s, "Add", [future, g.one(s, "Trilu", [full, g.constInts([-window])], { upper: 0 })]);
}

/**
 * The additive attention mask of a causal LM's training graph: causalMask [seq, seq], or for packed
 * sequences [batch, 1, seq, seq] — a query sees the keys at or before it (and within `window`) that
 * belong to its own segment (PACKED_INPUTS.segments), as transformers' padding-free training does.
 */
export function trainingMask(g: GraphBuilder, ctx: Pick<ArchitectureContext, "packed">, seq: string, window?: number): string {
  if (!ctx.packed) return causalMask(g, seq, window);
  const s = `/mask_packed${window === undefined ? "" : `_window_${window}`}`;
  const scalar = (x: string) => g.one(s, "Squeeze", [x, g.constInts([0])]);
  const index = g.one(s, "Range", [scalar(g.constInts([0])), scalar(seq), scalar(g.constInts([1]))]);
  const distance = g.one(s, "Sub", [g.one(s, "Unsqueeze", [index, g.constInts([1])]), g.one(s, "Unsqueeze", [index, g.constInts([0])])]);
  let allowed = g.one(s, "GreaterOrEqual", [distance, g.constInts([0])]);
  if (window !== undefined) allowed = g.one(s, "And", [allowed, g.one(s, "Less", [distance, g.constInts([window])])]);
  const segments = PACKED_INPUTS.segments;
  const same = g.one(s, "Equal", [g.one(s, "Unsqueeze", [segments, g.constInts([2])]), g.one(s, "Unsqueeze", [segments, g.constInts([1])])]);
  const mask = g.one(s, "Where", [g.one(s, "And", [allowed, same]), g.constFloat(0), g.constFloat(-3.4028234663852886e38)]);
  return g.one(s, "Unsqueeze", [mask, g.constInts([1])]);
}

/**
 * Each token's position as int64: 0 … seq − 1 ([seq], the same for every row), or for packed
 * sequences the PACKED_INPUTS.positions input ([batch, seq]).
 */
export function tokenPositions(g: GraphBuilder, ctx: Pick<ArchitectureContext, "packed">, seqScalar: string): string {
  if (ctx.packed) return PACKED_INPUTS.positions;
  return g.one("/positions", "Range", [
    g.one("/positions", "Squeeze", [g.constInts([0]), g.constInts([0])]),
    seqScalar,
    g.one("/positions", "Squeeze", [g.constInts([1]), g.constInts([0])]),
  ]);
}

/** A parameter of full fine-tuning: its values (float32, updated in place by the optimizer) and shape. */
export interface TrainedParameter {
  values: Float32Array;
  shape: number[];
}

/**
 * Builds the one ONNX model (opset 17, standard operators only) that computes the loss of a batch
 * (the causal-LM loss, or the architecture's: an encoder's classification loss, with its extra inputs
 * and outputs) and, with `gradients`, the gradient of every LoRA A and B. Frozen weights are initializers
 * written once; the factors, scalings and dropout masks are inputs fed every step.
 *
 * With `full` (full fine-tuning; no slots) every checkpoint tensor the graph reads is instead a graph
 * input under its checkpoint name, and `full` is filled with their values (read once, as float32) for
 * the trainer to feed and update in place; the outputs are `<name>.grad` for each of them.
 */
export async function buildTrainingGraph(params: {
  dir: string;
  /** Write the frozen weights to this folder's external data file as they are read (none held in JS). */
  external?: ExternalWeights;
  architecture: TrainingArchitecture;
  slots: readonly TrainingSlot[];
  dropout: boolean;
  gradients: boolean;
  /** Packed sequences (core's packExamples): the segment and position inputs. */
  packed?: boolean;
  /** Recompute each block's activations in the backward pass (ArchitectureContext.recompute). */
  recompute?: boolean;
  full?: Map<string, TrainedParameter>;
  /**
   * A LoRA run's checkpoint tensors trained beside the factors (PEFT's `bias` "all" / "lora_only"):
   * checkpoint name → graph input name (the adapter key). Like `full`'s, they become graph inputs
   * with a `<input name>.grad` output, their float32 values put in `parameters` under the input name.
   */
  trained?: { names: ReadonlyMap<string, string>; parameters: Map<string, TrainedParameter> };
  /** Values that replace checkpoint tensors (PiSSA / OLoRA's residual base weights), stored layout, by checkpoint name. */
  overrides?: ReadonlyMap<string, Float32Array>;
}): Promise<ModelProto> {
  const checkpoint = await Checkpoint.open(params.dir);
  try {
    const g = new GraphBuilder();
    const loaded = new Map<string, string>();
    const info = checkpoint.tensorInfo();
    const config = checkpoint.config;
    const full = params.full;
    const trainedNames = params.trained?.names ?? new Map<string, string>();
    const trainedInputs = new Set(trainedNames.values());
    // Trained parameters by graph input name: every tensor with `full`, else the trained ones.
    const parameters = full ?? params.trained?.parameters;
    const trains = (name: string) => full !== undefined || trainedNames.has(name) || trainedInputs.has(name);
    const contributions = new Map<string, string[]>();
    const ctx: ArchitectureContext = {
      g,
      config,
      label: params.dir,
      slots: params.slots,
      dropout: params.dropout,
      gradients: params.gradients,
      packed: params.packed === true,
      recompute: params.recompute === true,
      full: full !== undefined,
      trains,
      has: (name) => info.has(name),
      shapeOf: (name) => info.get(name)?.shape,
      num: (key, fallback) => {
        const v = config[key];
        if (typeof v === "number") return v;
        if (fallback !== undefined) return fallback;
        throw new LowrankError("CHECKPOINT_INVALID", `${params.dir}: config.json has no \`${key}\``);
      },
      weight: async (name) => {
        const known = loaded.get(name);
        if (known) return known;
        const t = info.get(name);
        if (!t) throw new LowrankError("CHECKPOINT_INVALID", `${params.dir}: missing tensor "${name}"`);
        const values = params.overrides?.get(name) ?? (await checkpoint.readFloat32(name));
        const input = full ? name : trainedNames.get(name);
        if (input !== undefined) parameters!.set(input, { values, shape: [...t.shape] });
        else if (params.external) g.initializers.push(params.external.add(name, values, t.shape));
        else g.floatInit(name, values, t.shape);
        loaded.set(name, input ?? name);
        return input ?? name;
      },
      gradient: (name, value) => {
        const input = loaded.get(name) ?? name;
        if (!parameters?.has(input)) throw new Error(`training graph: a gradient for "${name}", which is not a trained parameter`);
        contributions.set(input, [...(contributions.get(input) ?? []), value]);
      },
    };
    await params.architecture.build(ctx);
    for (const [name, input] of trainedNames)
      if (!parameters?.has(input))
        throw new LowrankError("TARGET_UNSUPPORTED", `${params.dir}: the onnx trainer's graph does not use "${name}", which the adapter trains`);
    const gradientOutputs = params.gradients ? params.slots.flatMap((s) => slotTensors(s).map((t) => gradientName(t.key))) : [];
    if (parameters && params.gradients)
      for (const name of parameters.keys()) {
        const parts = contributions.get(name);
        if (!parts) throw new Error(`training graph: ${params.dir}: no gradient was formed for "${name}"`);
        g.renameOutput(
          parts.reduce((sum, part) => g.one(`/grad/${name}`, "Add", [sum, part])),
          gradientName(name),
        );
        gradientOutputs.push(gradientName(name));
      }
    const extraOutputs = params.architecture.outputs ?? [];
    const outputs = [LOSS_OUTPUTS.loss, LOSS_OUTPUTS.tokens, ...extraOutputs.map((o) => o.name), ...gradientOutputs];
    const { nodes, initializers } = pruneGraph(g.nodes, g.initializers, outputs);
    const used = new Set(nodes.flatMap((n) => n.input));
    const input = [
      floatValueInfo(IDS_INPUT, ["batch", "sequence"], ONNX_INT64),
      ...Object.values(PACKED_INPUTS).map((name) => floatValueInfo(name, ["batch", "sequence"], ONNX_INT64)),
      ...(params.architecture.inputs ?? []),
      floatValueInfo(LOSS_INPUTS.targets, ["batch", "sequence"], ONNX_INT64),
      floatValueInfo(LOSS_INPUTS.targetMask, ["batch", "sequence"]),
      ...params.slots.flatMap((s) => slotTensors(s).map((t) => floatValueInfo(t.key, t.shape))),
      ...(params.slots.length > 0 ? [floatValueInfo(SCALINGS_INPUT, [params.slots.length])] : []),
      ...(params.dropout ? params.slots.map((s) => floatValueInfo(dropoutMaskName(s.module), [maskRowsName(s), s.inFeatures])) : []),
      ...[...(parameters ?? [])].map(([name, p]) => floatValueInfo(name, p.shape)),
    ].filter((v) => used.has(v.name));
    const shapes = new Map(params.slots.flatMap((s) => slotTensors(s).map((t): [string, number[]] => [gradientName(t.key), t.shape])));
    for (const [name, p] of parameters ?? []) shapes.set(gradientName(name), p.shape);
    const output = outputs.map((name) => extraOutputs.find((o) => o.name === name) ?? floatValueInfo(name, shapes.get(name) ?? []));
    const graph = { name: full ? "lowrank_full_training" : "lowrank_lora_training", node: nodes, initializer: initializers, input, output, value_info: [] };
    return ModelProtoType.fromObject({ ir_version: 8, producer_name: "lowrank", opset_import: [{ domain: "", version: 17 }], graph }) as unknown as ModelProto;
  } finally {
    await checkpoint.close();
  }
}
