import type { GraphBuilder } from "../export/graph-builder.js";
import { LOSS_OUTPUTS } from "./loss-ops.js";

/** Graph input and output names of sequence classification: the class of each row, and the logits for evaluation. */
export const CLASSIFICATION_INPUTS = { labels: "labels" } as const;
export const CLASSIFICATION_OUTPUTS = { logits: "logits" } as const;

/**
 * The sequence-classification loss of logits [batch, classes] against the graph input `labels`
 * (int64 [batch]), as the tfjs trainer computes it (`classificationLoss`): the mean over the rows of
 * logsumexp(logits) − logits[label]. Outputs `logits` (an Identity the loss reads, so it is never
 * pruned), `loss` and `tokens` — here the number of rows, the mean's denominator, so that a trainer
 * weighting batches by it weights them by examples.
 *
 * dLogits = (softmax − one-hot) / rows: the one-hot part is one ScatterElements writing p[label] − 1
 * into the softmax at the labels, so no one-hot tensor is made.
 */
export function classificationLoss(g: GraphBuilder, logits: string): { logits: string; loss: string; tokens: string; dLogits: () => string } {
  const s = "/loss";
  const named = g.renameOutput(g.one("/logits", "Identity", [logits]), CLASSIFICATION_OUTPUTS.logits);
  const labels = g.one(s, "Reshape", [CLASSIFICATION_INPUTS.labels, g.constInts([-1, 1])]);
  const rows = g.one(s, "ReduceSum", [g.one(s, "Cast", [g.one(s, "Shape", [CLASSIFICATION_INPUTS.labels])], { to: 1 })], { keepdims: 0 });
  const weight = g.one(s, "Reciprocal", [g.one(s, "Max", [rows, g.constFloat(1)])]);
  const picked = g.one(s, "GatherElements", [g.one(s, "LogSoftmax", [named], { axis: 1 }), labels], { axis: 1 });
  const loss = g.renameOutput(g.one(s, "Neg", [g.one(s, "Mul", [g.one(s, "ReduceSum", [picked], { keepdims: 0 }), weight])]), LOSS_OUTPUTS.loss);
  const tokens = g.renameOutput(g.one(s, "Identity", [rows]), LOSS_OUTPUTS.tokens);
  return {
    logits: named,
    loss,
    tokens,
    dLogits: () => {
      const ds = "/grad/loss";
      const probs = g.one(ds, "Softmax", [named], { axis: 1 });
      const atLabels = g.one(ds, "Sub", [g.one(ds, "GatherElements", [probs, labels], { axis: 1 }), g.constFloat(1)]);
      return g.one(ds, "Mul", [g.one(ds, "ScatterElements", [probs, labels, atLabels], { axis: 1 }), weight]);
    },
  };
}
