import * as ort from "onnxruntime-node";
import { CLASSIFICATION_INPUTS, CLASSIFICATION_OUTPUTS } from "./classification-loss-ops.js";
import { ATTENTION_MASK_INPUT } from "./encoder-training-graph.js";
import { LOSS_OUTPUTS } from "./loss-ops.js";
import { commonFeeds, int64, readGradients, type GraphFeeds } from "./training-session.js";

/** One classification batch's mean loss, its rows, logits [rows · labels] and (training) the gradients by graph input name. */
export interface ClassificationBatchResult {
  loss: number;
  rows: number;
  logits: Float32Array;
  /** Rows whose largest logit is at their label (the first one on ties, as tf.argMax). */
  correct: number;
  grads: Map<string, Float32Array>;
}

/**
 * Runs one batch through an encoder's classification graph (encoderTraining): the common feeds
 * (commonFeeds: ids, factors, scalings, dropout masks [tokens, in] per module, and the trained
 * checkpoint tensors — modules_to_save, biases, or every tensor with full fine-tuning), the padding
 * mask and the class labels; reads the loss, the logits and, with `gradients`, every gradient.
 */
export async function runClassificationBatch(
  session: ort.InferenceSession,
  params: GraphFeeds & { mask: number[][]; classes: number[]; gradients: boolean },
): Promise<ClassificationBatchResult> {
  const b = params.ids.length;
  const feeds = commonFeeds(session, params);
  feeds[ATTENTION_MASK_INPUT] = new ort.Tensor("int64", int64(params.mask.flat()), [b, params.ids[0]!.length]);
  feeds[CLASSIFICATION_INPUTS.labels] = new ort.Tensor("int64", int64(params.classes), [b]);
  const fetches = params.gradients ? session.outputNames : [LOSS_OUTPUTS.loss, LOSS_OUTPUTS.tokens, CLASSIFICATION_OUTPUTS.logits];
  const out = await session.run(feeds, fetches);
  const grads = params.gradients ? readGradients(out, params) : new Map<string, Float32Array>();
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
