import type { GraphBuilder } from "../export/graph-builder.js";

/** Graph input and output names of the causal-LM loss. */
export const LOSS_INPUTS = { targets: "targets", targetMask: "target_mask" } as const;
export const LOSS_OUTPUTS = { loss: "loss", tokens: "tokens" } as const;

/**
 * The causal-LM loss of the head h·Eᵀ (h [tokens, hidden], E the stored [vocab, hidden] head
 * weight) and the gradient for h, as the tfjs trainer computes it: mean over the positions whose
 * mask is 1 of logsumexp(logits) − logits[target]. Inputs `targets` (int64 [batch, seq], the next
 * token at each position, ignored positions set to 0) and `target_mask` (float [batch, seq]) are
 * made by the trainer. Outputs `loss` and `tokens` (Σ mask). With `softcap` (Gemma-2's
 * final_logit_softcapping) the logits are tanh(h·Eᵀ / cap)·cap.
 *
 * The [tokens, vocab] tensors are the largest of the step (100 MB at 4 × 128 on GPT-2's vocabulary),
 * so they are made as few times as possible: one Gemm (transB: no transposed copy of E), one
 * LogSoftmax for the loss, one Softmax for the gradient. The gradient (softmax − one-hot)·w·E is
 * formed as w ⊙ (softmax·E − E[targets]): the one-hot term is a Gather of E's rows, not a
 * [tokens, vocab] tensor. The soft cap's slope s = 1 − tanh² makes it
 * w ⊙ ((softmax ⊙ s)·E − s[target]·E[targets]), s[target] one GatherElements.
 */
export function causalLmLoss(
  g: GraphBuilder,
  hidden: string,
  head: string,
  options: { softcap?: number } = {},
): { loss: string; tokens: string; dHidden: () => string } {
  const s = "/loss";
  let logits = g.one("/lm_head", "Gemm", [hidden, head], { transB: 1 });
  let capped: string | undefined;
  if (options.softcap !== undefined) {
    capped = g.one("/softcap", "Tanh", [g.one("/softcap", "Div", [logits, g.constFloat(options.softcap)])]);
    logits = g.one("/softcap", "Mul", [capped, g.constFloat(options.softcap)]);
  }
  const targetRows = g.one(s, "Reshape", [LOSS_INPUTS.targets, g.constInts([-1])]);
  const targets = g.one(s, "Reshape", [LOSS_INPUTS.targets, g.constInts([-1, 1])]);
  const mask = g.one(s, "Reshape", [LOSS_INPUTS.targetMask, g.constInts([-1, 1])]);
  const count = g.one(s, "ReduceSum", [LOSS_INPUTS.targetMask], { keepdims: 0 });
  const weights = g.one(s, "Div", [mask, g.one(s, "Max", [count, g.constFloat(1)])]);
  // logits[target] − logsumexp(logits), read off one LogSoftmax pass (ReduceLogSumExp is ~7× slower).
  const picked = g.one(s, "GatherElements", [g.one(s, "LogSoftmax", [logits], { axis: 1 }), targets], { axis: 1 });
  const loss = g.renameOutput(g.one(s, "Neg", [g.one(s, "ReduceSum", [g.one(s, "Mul", [picked, weights])], { keepdims: 0 })]), LOSS_OUTPUTS.loss);
  const tokens = g.renameOutput(g.one(s, "Identity", [count]), LOSS_OUTPUTS.tokens);
  return {
    loss,
    tokens,
    dHidden: () => {
      const ds = "/grad/loss";
      const probs = g.one(ds, "Softmax", [logits], { axis: 1 });
      const targetRowsOfHead = g.one(ds, "Gather", [head, targetRows], { axis: 0 });
      if (capped === undefined) return g.one(ds, "Mul", [g.one(ds, "Sub", [g.one(ds, "MatMul", [probs, head]), targetRowsOfHead]), weights]);
      const slope = g.one(ds, "Sub", [g.constFloat(1), g.one(ds, "Mul", [capped, capped])]);
      const expected = g.one(ds, "MatMul", [g.one(ds, "Mul", [probs, slope]), head]);
      const oneHot = g.one(ds, "Mul", [targetRowsOfHead, g.one(ds, "GatherElements", [slope, targets], { axis: 1 })]);
      return g.one(ds, "Mul", [g.one(ds, "Sub", [expected, oneHot]), weights]);
    },
  };
}
