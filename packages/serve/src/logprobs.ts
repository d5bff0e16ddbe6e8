/** A chosen token's log-probability and the most likely alternatives at its position. */
export interface TokenLogprob {
  logprob: number;
  top: { token: number; logprob: number }[];
}

/** log-softmax of one row of logits (in float64) at `token`, and the `top` most likely tokens (none for 0). */
export function tokenLogprobs(logits: Float32Array, token: number, top: number): TokenLogprob {
  let max = -Infinity;
  for (const v of logits) if (v > max) max = v;
  let sum = 0;
  for (const v of logits) sum += Math.exp(v - max);
  const logZ = max + Math.log(sum);
  const best: { token: number; logprob: number }[] = [];
  if (top > 0) {
    for (let i = 0; i < logits.length; i++) {
      const lp = logits[i]! - logZ;
      if (best.length < top || lp > best[best.length - 1]!.logprob) {
        best.push({ token: i, logprob: lp });
        best.sort((a, b) => b.logprob - a.logprob);
        if (best.length > top) best.pop();
      }
    }
  }
  return { logprob: logits[token]! - logZ, top: best };
}
