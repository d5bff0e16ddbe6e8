import * as ort from "onnxruntime-node";
import { CLASSIFICATION_INPUTS, CLASSIFICATION_OUTPUTS } from "./classification-loss-ops.js";
import { ATTENTION_MASK_INPUT } from "./encoder-training-graph.js";
import { LOSS_OUTPUTS } from "./loss-ops.js";
import { dropoutMaskName, gradientName, SCALINGS_INPUT, slotTensors, type TrainingSlot } from "./lora-plan.js";
import { IDS_INPUT, type TrainedParameter } from "./training-graph.js";

/** One classification batch's mean loss, its rows, logits [rows · labels] and (training) the gradients by graph input name. */
export interface ClassificationBatchResult {
  loss: number;
  rows: number;
  logits: Float32Array;
  /** Rows whose largest logit is at their label (the first one on ties, as tf.argMax). */
  correct: number;
  grads: Map<string, Float32Array>;
}

const int64 = (values: readonly number[]): BigInt64Array => BigInt64Array.from(values, (x) => BigInt(x));

/**
 * Runs one batch through an encoder's classification graph (buildEncoderTrainingGraph): feeds the
 * ids, padding mask and class labels, the factors, scalings and dropout masks ([tokens, in] per
 * module), and the trained checkpoint tensors (`parameters`: modules_to_save, biases, or every
 * tensor with full fine-tuning); reads the loss, the logits and, with `gradients`, every gradient.
 */
export async function runClassificationBatch(
  session: ort.InferenceSession,
  params: {
    slots: readonly TrainingSlot[];
    ids: number[][];
    mask: number[][];
    classes: number[];
    factors: ReadonlyMap<string, Float32Array>;
    masks?: ReadonlyMap<string, Float32Array>;
    parameters?: ReadonlyMap<string, TrainedParameter>;
    gradients: boolean;
  },
): Promise<ClassificationBatchResult> {
  const b = params.ids.length;
  const s = params.ids[0]!.length;
  const wanted = new Set(session.inputNames);
  const feeds: Record<string, ort.Tensor> = {
    [IDS_INPUT]: new ort.Tensor("int64", int64(params.ids.flat()), [b, s]),
    [ATTENTION_MASK_INPUT]: new ort.Tensor("int64", int64(params.mask.flat()), [b, s]),
    [CLASSIFICATION_INPUTS.labels]: new ort.Tensor("int64", int64(params.classes), [b]),
  };
  if (wanted.has(SCALINGS_INPUT))
    feeds[SCALINGS_INPUT] = new ort.Tensor("float32", Float32Array.from(params.slots.map((x) => x.scaling)), [params.slots.length]);
  for (const slot of params.slots) {
    for (const { key, shape } of slotTensors(slot)) if (wanted.has(key)) feeds[key] = new ort.Tensor("float32", params.factors.get(key)!, shape);
    const maskName = dropoutMaskName(slot.module);
    if (wanted.has(maskName)) feeds[maskName] = new ort.Tensor("float32", params.masks!.get(slot.module)!, [b * s, slot.inFeatures]);
  }
  for (const [name, p] of params.parameters ?? []) if (wanted.has(name)) feeds[name] = new ort.Tensor("float32", p.values, p.shape);
  const fetches = params.gradients ? session.outputNames : [LOSS_OUTPUTS.loss, LOSS_OUTPUTS.tokens, CLASSIFICATION_OUTPUTS.logits];
  const out = await session.run(feeds, fetches);
  const grads = new Map<string, Float32Array>();
  if (params.gradients) {
    for (const slot of params.slots) for (const { key } of slotTensors(slot)) grads.set(key, out[gradientName(key)]!.data as Float32Array);
    for (const name of params.parameters?.keys() ?? []) grads.set(name, out[gradientName(name)]!.data as Float32Array);
  }
  const logits = out[CLASSIFICATION_OUTPUTS.logits]!.data as Float32Array;
  return { loss: (out[LOSS_OUTPUTS.loss]!.data as Float32Array)[0]!, rows: b, logits, correct: correctRows(logits, params.classes), grads };
}

/** How many rows of logits [rows · labels] have their largest value (the first on ties) at their class. */
export function correctRows(logits: Float32Array, classes: readonly number[]): number {
  if (classes.length === 0) return 0;
  const labels = logits.length / classes.length;
  let correct = 0;
  classes.forEach((c, row) => {
    let best = 0;
    for (let j = 1; j < labels; j++) if (logits[row * labels + j]! > logits[row * labels + best]!) best = j;
    if (best === c) correct += 1;
  });
  return correct;
}
