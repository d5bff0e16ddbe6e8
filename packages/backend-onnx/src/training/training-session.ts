import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import * as ort from "onnxruntime-node";
import type { Logger } from "@lowrank/core";
import { causalTargets } from "@lowrank/core/internal";
import { encodeModel, type ModelProto } from "../onnx/onnx-codec.js";
import { EXTERNAL_DATA_THRESHOLD, writeOnnx } from "../onnx/write-onnx.js";
import { ExternalWeights } from "../onnx/external-weights.js";
import { createOrtSession, type CreatedSession, type ExecutionProvider } from "../session/ort-session.js";
import { LOSS_INPUTS, LOSS_OUTPUTS } from "./loss-ops.js";
import { dropoutMaskName, gradientName, maskRows, SCALINGS_INPUT, slotTensors, type TrainingSlot } from "./lora-plan.js";
import { IDS_INPUT, PACKED_INPUTS, type TrainedParameter } from "./training-graph.js";

/** One batch's loss, predicted-token count and (for a training graph) the trained parameters' gradients. */
export interface BatchResult {
  loss: number;
  /** Positions that were predicted (the mean's denominator). */
  predicted: number;
  grads: Map<string, Float32Array>;
}

export interface SessionOptions {
  executionProvider?: ExecutionProvider;
  threads?: number;
  logger?: Logger;
  /** Put the weights in an external data file even below protobuf's 2 GB limit (tests the large-model path). */
  external?: boolean;
}

/** Training sessions plan tensors one by one and keep one copy of each frozen weight (see SessionOptions). */
const TRAINING_SESSION = { memoryPattern: false, prepacking: false } as const;

/**
 * An ONNX Runtime session on a training (or evaluation) graph, created once per run through
 * createOrtSession (CUDA when asked and present, else the CPU with the reason). Models whose
 * weights pass protobuf's 2 GB limit go through a temporary file with external data.
 */
export async function openGraphSession(model: ModelProto, options: SessionOptions): Promise<CreatedSession> {
  const bytes = model.graph.initializer.reduce((n, t) => n + (t.raw_data?.byteLength ?? 0), 0);
  if (bytes <= EXTERNAL_DATA_THRESHOLD && !options.external) return createOrtSession(encodeModel(model), { ...options, ...TRAINING_SESSION });
  const dir = await mkdtemp(path.join(os.tmpdir(), "lowrank-train-graph-"));
  try {
    const file = path.join(dir, "train.onnx");
    await writeOnnx(file, model, { sourceDir: dir, external: true });
    return await createOrtSession(file, { ...options, ...TRAINING_SESSION });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Builds a training graph with its frozen weights streamed to an external data file in a temporary
 * folder (each read from the checkpoint, written, dropped: the weights are never all in JS) and opens
 * the session on that file; the folder is removed once ONNX Runtime has loaded it.
 */
export async function openStreamedGraphSession(build: (external: ExternalWeights) => Promise<ModelProto>, options: SessionOptions): Promise<CreatedSession> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "lowrank-train-graph-"));
  try {
    const external = new ExternalWeights(dir);
    let model: ModelProto;
    try {
      model = await build(external);
    } finally {
      external.close();
    }
    const file = path.join(dir, "train.onnx");
    await writeFile(file, encodeModel(model));
    return await createOrtSession(file, { ...options, ...TRAINING_SESSION });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Int64 data of ids / labels for an ort.Tensor. */
export const int64 = (values: readonly number[]): BigInt64Array => BigInt64Array.from(values, (x) => BigInt(x));

/** What every training graph is fed besides its loss's inputs. */
export interface GraphFeeds {
  slots: readonly TrainingSlot[];
  ids: number[][];
  factors: ReadonlyMap<string, Float32Array>;
  /** Dropout masks [maskRows(slot, tokens), in] by module. */
  masks?: ReadonlyMap<string, Float32Array>;
  /** The checkpoint tensors trained as graph inputs (full fine-tuning: every one), fed as they are. */
  parameters?: ReadonlyMap<string, TrainedParameter>;
  /** Packed sequences: each token's segment and position [b][s] (core's makeBatch). */
  segments?: number[][];
  positions?: number[][];
}

/**
 * The feeds every training graph shares, those the session takes: the ids, each slot's factors, the
 * scalings, the dropout masks and the trained parameters.
 */
export function commonFeeds(session: ort.InferenceSession, params: GraphFeeds): Record<string, ort.Tensor> {
  const b = params.ids.length;
  const s = params.ids[0]!.length;
  const wanted = new Set(session.inputNames);
  const feeds: Record<string, ort.Tensor> = { [IDS_INPUT]: new ort.Tensor("int64", int64(params.ids.flat()), [b, s]) };
  if (wanted.has(SCALINGS_INPUT))
    feeds[SCALINGS_INPUT] = new ort.Tensor("float32", Float32Array.from(params.slots.map((x) => x.scaling)), [params.slots.length]);
  for (const slot of params.slots) {
    for (const { key, shape } of slotTensors(slot)) if (wanted.has(key)) feeds[key] = new ort.Tensor("float32", params.factors.get(key)!, shape);
    const maskName = dropoutMaskName(slot.module);
    if (wanted.has(maskName)) feeds[maskName] = new ort.Tensor("float32", params.masks!.get(slot.module)!, [maskRows(slot, b * s), slot.inFeatures]);
  }
  for (const [name, p] of params.parameters ?? []) if (wanted.has(name)) feeds[name] = new ort.Tensor("float32", p.values, p.shape);
  // A packed graph given an unpacked batch (evaluation data is not packed): one segment a row, positions from 0.
  const segments = params.segments ?? params.ids.map((row) => row.map(() => 0));
  const positions = params.positions ?? params.ids.map((row) => row.map((_, i) => i));
  if (wanted.has(PACKED_INPUTS.segments)) feeds[PACKED_INPUTS.segments] = new ort.Tensor("int64", int64(segments.flat()), [b, s]);
  if (wanted.has(PACKED_INPUTS.positions)) feeds[PACKED_INPUTS.positions] = new ort.Tensor("int64", int64(positions.flat()), [b, s]);
  return feeds;
}

/** The gradients a training graph's run gave for every factor and trained parameter, by graph input name. */
export function readGradients(out: ort.InferenceSession.OnnxValueMapType, params: Pick<GraphFeeds, "slots" | "parameters">): Map<string, Float32Array> {
  const grads = new Map<string, Float32Array>();
  for (const slot of params.slots) for (const { key } of slotTensors(slot)) grads.set(key, out[gradientName(key)]!.data as Float32Array);
  for (const name of params.parameters?.keys() ?? []) grads.set(name, out[gradientName(name)]!.data as Float32Array);
  return grads;
}

/**
 * Runs one causal-LM batch: the common feeds (commonFeeds; with full fine-tuning the model's
 * `parameters`) and the shifted targets, and reads the outputs.
 */
export async function runBatch(
  session: ort.InferenceSession,
  params: GraphFeeds & {
    labels: number[][];
    gradients: boolean;
  },
): Promise<BatchResult> {
  const b = params.ids.length;
  const s = params.ids[0]!.length;
  const { targets, weights, predicted } = causalTargets(params.labels);
  const feeds = commonFeeds(session, params);
  feeds[LOSS_INPUTS.targets] = new ort.Tensor("int64", int64(targets), [b, s]);
  feeds[LOSS_INPUTS.targetMask] = new ort.Tensor("float32", Float32Array.from(weights), [b, s]);
  const fetches = params.gradients ? session.outputNames : [LOSS_OUTPUTS.loss, LOSS_OUTPUTS.tokens];
  const out = await session.run(feeds, fetches);
  const grads = params.gradients ? readGradients(out, params) : new Map<string, Float32Array>();
  return { loss: (out[LOSS_OUTPUTS.loss]!.data as Float32Array)[0]!, predicted, grads };
}
