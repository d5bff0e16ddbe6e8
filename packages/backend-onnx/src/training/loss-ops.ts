import { LowrankError } from "@lowrank/core";
import type { GraphBuilder } from "../export/graph-builder.js";
import type { LoraInputs } from "./lora-linear-ops.js";

/** Graph input and output names of the causal-LM loss. */
export const LOSS_INPUTS = { targets: "targets", targetMask: "target_mask" } as const;
export const LOSS_OUTPUTS = { loss: "loss", tokens: "tokens" } as const;

/**
 * How many row chunks the loss runs the output head in: one for small vocabularies, eight from 16k
 * tokens up (GPT-2's 50,257: at 4 × 128 each chunk's [64, vocab] logits are 13 MB instead of 100 MB).
 */
export function lossChunks(vocab: number): number {
  return vocab >= 16384 ? 8 : 1;
}

/**
 * The causal-LM loss of the head h·Eᵀ (h [tokens, hidden], E the stored [vocab, hidden] head
 * weight) and the gradient for h, as the tfjs trainer computes it: mean over the positions whose
 * mask is 1 of logsumexp(logits) − logits[target]. Inputs `targets` (int64 [batch, seq], the next
 * token at each position, ignored positions set to 0) and `target_mask` (float [batch, seq]) are
 * made by the trainer. Outputs `loss` and `tokens` (Σ mask). With `softcap` (Gemma-2's
 * final_logit_softcapping) the logits are tanh(h·Eᵀ / cap)·cap.
 *
 * The [tokens, vocab] tensors are the largest of the step, so the head is fused with the loss: the
 * rows run in `chunks` slices (lossChunks), each slice's logits, log-probabilities and probabilities
 * made, used for its loss term and its gradients, and freed before the next slice — never all
 * rows' at once. Per slice: one Gemm (transB: no transposed copy of E), one LogSoftmax, and its Exp
 * for the gradient. The gradient (softmax − one-hot)·w·E is formed as w ⊙ (softmax·E − E[targets]):
 * the one-hot term is a Gather of E's rows, not a [tokens, vocab] tensor. The soft cap's slope
 * s = 1 − tanh² makes it w ⊙ ((softmax ⊙ s)·E − s[target]·E[targets]), s[target] one GatherElements.
 *
 * `dHead` (full fine-tuning) is the head weight's gradient [vocab, hidden], dlogitsᵀ·h, formed the
 * same way: Σ over slices of (softmax ⊙ s)ᵀ·(w ⊙ h) − a ScatterND (reduction "add") of
 * s[target]·w ⊙ h at the targets. For a tied head it is added to the token embedding's gradient.
 * Nodes nobody reads (the gradients, in an evaluation graph) are pruned with the graph.
 *
 * `lora` (PEFT's LoRA on lm_head) adds s·dropout(h)·Aᵀ·Bᵀ to the logits, through each slice's Gemm
 * C input. Its gradients come with `dHidden()` (graph outputs gradA, gradB) the same way as the head's:
 * with u = s·dropout(h)·Aᵀ, dB = dlogitsᵀ·u (dHead's form with u for h) and du = dlogits·B (dHidden's
 * form with B for E), dA = s·duᵀ·dropout(h), and dHidden gains s·du·A (⊙ the dropout mask).
 */
export function causalLmLoss(
  g: GraphBuilder,
  hidden: string,
  head: string,
  options: { softcap?: number; chunks?: number; lora?: LoraInputs } = {},
): { loss: string; tokens: string; dHidden: () => string; dHead: () => string } {
  const s = "/loss";
  const chunks = Math.max(1, Math.floor(options.chunks ?? 1));
  const targets = g.one(s, "Reshape", [LOSS_INPUTS.targets, g.constInts([-1, 1])]);
  const mask = g.one(s, "Reshape", [LOSS_INPUTS.targetMask, g.constInts([-1, 1])]);
  const count = g.one(s, "ReduceSum", [LOSS_INPUTS.targetMask], { keepdims: 0 });
  const weights = g.one(s, "Div", [mask, g.one(s, "Max", [count, g.constFloat(1)])]);
  const split = rowSlices(g, hidden, chunks);
  const slice = (x: string): string[] => (chunks === 1 ? [x] : g.op(s, "Split", [x, split!], { axis: 0 }, chunks));
  const [hs, ts, ws] = [slice(hidden), slice(targets), slice(weights)];
  const lora = options.lora;
  if (lora && (lora.magnitude || lora.bias))
    throw new LowrankError("TARGET_UNSUPPORTED", "the onnx trainer does not support DoRA or lora_bias on `lm_head` yet; use --backend tfjs");
  const dropped = lora?.dropoutMask ? g.one("/lm_head/lora_dropout", "Mul", [hidden, lora.dropoutMask]) : hidden;
  const scaledDown = lora ? g.one("/lm_head/lora_A", "Mul", [g.one("/lm_head/lora_A", "Gemm", [dropped, lora.A], { transB: 1 }), lora.scaling]) : undefined;
  const us = scaledDown ? slice(scaledDown) : [];
  const lossParts: string[] = [];
  const probsParts: string[] = [];
  const slopesAtTargets: string[] = [];
  for (let c = 0; c < chunks; c++) {
    const [h, t, w] = [hs[c]!, ts[c]!, ws[c]!];
    const cs = chunks === 1 ? "" : `/chunk_${c}`;
    let logits = g.one(`/lm_head${cs}`, "Gemm", [h, head], { transB: 1 });
    if (lora) logits = g.one(`/lm_head/lora_B${cs}`, "Gemm", [us[c]!, lora.B, logits], { transB: 1 });
    let capped: string | undefined;
    if (options.softcap !== undefined) {
      capped = g.one(`/softcap${cs}`, "Tanh", [g.one(`/softcap${cs}`, "Div", [logits, g.constFloat(options.softcap)])]);
      logits = g.one(`/softcap${cs}`, "Mul", [capped, g.constFloat(options.softcap)]);
    }
    // logits[target] − logsumexp(logits), read off one LogSoftmax pass (ReduceLogSumExp is ~7× slower).
    const logProbs = g.one(`${s}${cs}`, "LogSoftmax", [logits], { axis: 1 });
    const picked = g.one(`${s}${cs}`, "GatherElements", [logProbs, t], { axis: 1 });
    lossParts.push(g.one(`${s}${cs}`, "ReduceSum", [g.one(`${s}${cs}`, "Mul", [picked, w])], { keepdims: 0 }));
    // The gradients' softmax (⊙ the soft cap's slope) from the same log-probabilities.
    const ds = `/grad/loss${cs}`;
    let probs = g.one(ds, "Exp", [logProbs]);
    let slopeAtTarget: string | undefined;
    if (capped !== undefined) {
      const slope = g.one(ds, "Sub", [g.constFloat(1), g.one(ds, "Mul", [capped, capped])]);
      probs = g.one(ds, "Mul", [probs, slope]);
      slopeAtTarget = g.one(ds, "GatherElements", [slope, t], { axis: 1 });
      slopesAtTargets.push(slopeAtTarget);
    }
    probsParts.push(probs);
  }
  const sum = (scope: string, parts: string[]): string => parts.reduce((a, b) => g.one(scope, "Add", [a, b]));
  const loss = g.renameOutput(g.one(s, "Neg", [sum(s, lossParts)]), LOSS_OUTPUTS.loss);
  const tokens = g.renameOutput(g.one(s, "Identity", [count]), LOSS_OUTPUTS.tokens);
  const join = (scope: string, parts: string[]): string => (parts.length === 1 ? parts[0]! : g.one(scope, "Concat", parts, { axis: 0 }));
  /** dlogits·M for logits = x·Mᵀ (M: the head E, or LoRA's B), per slice w ⊙ ((softmax ⊙ s)·M − s[target]·M[targets]). */
  const dRows = (scope: string, matrix: string): string =>
    join(
      scope,
      probsParts.map((probs, c) => {
        let targetRows = g.one(scope, "Gather", [matrix, g.one(scope, "Reshape", [ts[c]!, g.constInts([-1])])], { axis: 0 });
        if (slopesAtTargets[c] !== undefined) targetRows = g.one(scope, "Mul", [targetRows, slopesAtTargets[c]!]);
        return g.one(scope, "Mul", [g.one(scope, "Sub", [g.one(scope, "MatMul", [probs, matrix]), targetRows]), ws[c]!]);
      }),
    );
  /**
   * dlogitsᵀ·x for logits = x·Mᵀ ([vocab, cols of x]): Σ over slices of (softmax ⊙ s)ᵀ·(w ⊙ x) — no
   * one-hot [tokens, vocab] tensor — minus the rows s[target]·w ⊙ x scattered (added) at the targets.
   */
  const dMatrix = (scope: string, x: string, xs: string[]): string => {
    const expected = sum(
      scope,
      probsParts.map((probs, c) => g.one(scope, "Gemm", [probs, g.one(scope, "Mul", [xs[c]!, ws[c]!])], { transA: 1 })),
    );
    let picked = g.one(scope, "Mul", [x, weights]);
    if (slopesAtTargets.length > 0) picked = g.one(scope, "Mul", [picked, join(scope, slopesAtTargets)]);
    const rows = g.one(scope, "Slice", [g.one(scope, "Shape", [head]), g.constInts([0]), g.constInts([1])]);
    const cols = g.one(scope, "Slice", [g.one(scope, "Shape", [x]), g.constInts([1]), g.constInts([2])]);
    const zeros = g.one(scope, "ConstantOfShape", [g.one(scope, "Concat", [rows, cols], { axis: 0 })]);
    return g.one(scope, "Sub", [expected, g.one(scope, "ScatterND", [zeros, targets, picked], { reduction: "add" })]);
  };
  return {
    loss,
    tokens,
    dHidden: () => {
      const dh = dRows("/grad/loss", head);
      if (!lora || !scaledDown) return dh;
      const ls = "/grad/lm_head/lora";
      g.renameOutput(dMatrix(`${ls}_B`, scaledDown, us), lora.gradB);
      const down = g.one(`${ls}_A`, "Mul", [dRows(`${ls}_B`, lora.B), lora.scaling]);
      g.renameOutput(g.one(`${ls}_A`, "Gemm", [down, dropped], { transA: 1 }), lora.gradA);
      let viaLora = g.one(`${ls}_A`, "MatMul", [down, lora.A]);
      if (lora.dropoutMask) viaLora = g.one(`${ls}_dropout`, "Mul", [viaLora, lora.dropoutMask]);
      return g.one(ls, "Add", [dh, viaLora]);
    },
    dHead: () => dMatrix("/grad/lm_head", hidden, hs),
  };
}

/**
 * The sizes of `chunks` row slices of x [rows, …] for Split (int64 [chunks]): ⌈rows / chunks⌉ each,
 * the last ones shorter or empty. Undefined for one chunk.
 */
function rowSlices(g: GraphBuilder, x: string, chunks: number): string | undefined {
  if (chunks === 1) return undefined;
  const s = "/loss/slices";
  const rows = g.one(s, "Slice", [g.one(s, "Shape", [x]), g.constInts([0]), g.constInts([1])]);
  const size = g.one(s, "Div", [g.one(s, "Add", [rows, g.constInts([chunks - 1])]), g.constInts([chunks])]);
  const starts = g.one(s, "Mul", [size, g.constInts(Array.from({ length: chunks }, (_, i) => i))]);
  const left = g.one(s, "Max", [g.one(s, "Sub", [rows, starts]), g.constInts([0])]);
  return g.one(s, "Min", [left, size]);
}
