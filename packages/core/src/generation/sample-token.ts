import type { SeededRandom } from "../math/random.js";

export interface SamplingOptions {
  /** 0 or undefined: greedy. */
  temperature?: number;
  topK?: number;
  topP?: number;
}

/** Picks the next token from one row of logits: greedy, or temperature + top-k + top-p sampling. */
export function sampleToken(logits: Float32Array, options: SamplingOptions, rng: SeededRandom): number {
  const temperature = options.temperature ?? 0;
  if (!(temperature > 0)) {
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
    return best;
  }
  let order = Array.from(logits.keys()).sort((a, b) => logits[b]! - logits[a]!);
  if (options.topK !== undefined && options.topK > 0) order = order.slice(0, options.topK);
  // A row of logits has a value per vocabulary entry, and topK > 0 keeps at least one.
  const max = logits[order[0]!]!;
  let probs = order.map((i) => Math.exp((logits[i]! - max) / temperature));
  let total = probs.reduce((s, p) => s + p, 0);
  if (options.topP !== undefined && options.topP < 1) {
    let cumulative = 0;
    let keep = 0;
    while (keep < probs.length && cumulative < options.topP * total) cumulative += probs[keep++]!;
    order = order.slice(0, Math.max(1, keep));
    probs = probs.slice(0, Math.max(1, keep));
    total = probs.reduce((s, p) => s + p, 0);
  }
  let r = rng.next() * total;
  for (let i = 0; i < order.length; i++) {
    r -= probs[i]!;
    if (r <= 0) return order[i]!;
  }
  return order[order.length - 1]!;
}
