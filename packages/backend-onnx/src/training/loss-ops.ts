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
 *
 * `dHead` (full fine-tuning) is the head weight's gradient [vocab, hidden], dlogitsᵀ·h, formed the
 * same way from the same Softmax: (softmax ⊙ s)ᵀ·(w ⊙ h) − a ScatterND (reduction "add") of
 * s[target]·w ⊙ h at the targets. For a tied head it is added to the token embedding's gradient.
 */
export function causalLmLoss(
  g: GraphBuilder,
  hidden: string,
  head: string,
  options: { softcap?: number } = {},
): { loss: string; tokens: string; dHidden: () => string; dHead: () => string } {
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
  // Shared by the hidden state's gradient and (full fine-tuning) the head's: softmax, with a soft cap ⊙ its slope.
  const ds = "/grad/loss";
  let slope: string | undefined;
  let expectedWeights: string | undefined;
  const softmaxTerm = (): string => {
    if (expectedWeights) return expectedWeights;
    const probs = g.one(ds, "Softmax", [logits], { axis: 1 });
    if (capped === undefined) return (expectedWeights = probs);
    slope = g.one(ds, "Sub", [g.constFloat(1), g.one(ds, "Mul", [capped, capped])]);
    return (expectedWeights = g.one(ds, "Mul", [probs, slope]));
  };
  return {
    loss,
    tokens,
    dHidden: () => {
      const probs = softmaxTerm();
      const targetRowsOfHead = g.one(ds, "Gather", [head, targetRows], { axis: 0 });
      if (slope === undefined) return g.one(ds, "Mul", [g.one(ds, "Sub", [g.one(ds, "MatMul", [probs, head]), targetRowsOfHead]), weights]);
      const expected = g.one(ds, "MatMul", [probs, head]);
      const oneHot = g.one(ds, "Mul", [targetRowsOfHead, g.one(ds, "GatherElements", [slope, targets], { axis: 1 })]);
      return g.one(ds, "Mul", [g.one(ds, "Sub", [expected, oneHot]), weights]);
    },
    dHead: () => {
      // dHead = dlogitsᵀ·h = softmaxᵀ·(w ⊙ h) − the rows w ⊙ h scattered (added) at the targets: no one-hot [tokens, vocab] tensor.
      const hs = "/grad/lm_head";
      const probs = softmaxTerm();
      const weighted = g.one(hs, "Mul", [hidden, weights]);
      const expected = g.one(hs, "Gemm", [probs, weighted], { transA: 1 });
      const picked = slope === undefined ? weighted : g.one(hs, "Mul", [weighted, g.one(hs, "GatherElements", [slope, targets], { axis: 1 })]);
      const zeros = g.one(hs, "ConstantOfShape", [g.one(hs, "Shape", [head])]);
      return g.one(hs, "Sub", [expected, g.one(hs, "ScatterND", [zeros, targets, picked], { reduction: "add" })]);
    },
  };
}
