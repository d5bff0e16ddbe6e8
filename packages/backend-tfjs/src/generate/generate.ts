import * as tf from "@tensorflow/tfjs";
import { LowrankError } from "@lowrank/core";
import { SeededRandom } from "@lowrank/core/internal";
import { inferenceContext } from "../layers/lora-branch.js";
import type { KvCache, TfjsModel } from "../models/model.js";
import { sampleToken, type SamplingOptions } from "./sample-token.js";

export interface GenerateOptions extends SamplingOptions {
  maxNewTokens: number;
  /** Stop after this token (defaults to the model's EOS). */
  eosTokenId?: number;
  seed?: number;
  /** Reuse keys and values between steps (default true); without it every step reruns the prefix. */
  useCache?: boolean;
  /** Called with each new token as it is chosen. */
  onToken?: (token: number) => void;
}

function lastRow(logits: tf.Tensor): Float32Array {
  // Logits are [batch, seq, vocab].
  const [, s, v] = logits.shape;
  const row = tf.slice(logits, [0, s! - 1, 0], [1, 1, v!]);
  const values = row.dataSync() as Float32Array;
  row.dispose();
  return values;
}

function disposeCache(cache: KvCache | undefined): void {
  if (!cache) return;
  for (const t of [...cache.keys, ...cache.values]) t.dispose();
}

/**
 * Continues `prompt` (token ids) with a causal LM: greedy, or sampling with temperature, top-k and
 * top-p from a seeded generator; stops at EOS or after maxNewTokens. Returns the new tokens only.
 * @throws LowrankError USAGE for a model that is not a causal LM or an empty prompt.
 */
export function generate(model: TfjsModel, prompt: number[], options: GenerateOptions): number[] {
  if (model.task !== "causal-lm") throw new LowrankError("USAGE", `generation needs a causal language model; this one is ${model.task}`);
  if (prompt.length === 0) throw new LowrankError("USAGE", "the prompt is empty");
  const rng = new SeededRandom(options.seed ?? 0);
  const eos = options.eosTokenId ?? model.eosTokenId;
  const useCache = options.useCache ?? true;
  const tokens = [...prompt];
  const produced: number[] = [];
  let cache: KvCache | undefined = useCache ? { keys: [], values: [], length: 0 } : undefined;
  let pending = prompt;
  try {
    for (let step = 0; step < options.maxNewTokens; step++) {
      const input = useCache ? pending : tokens;
      let logitsRow: Float32Array | undefined;
      let nextCache: KvCache | undefined;
      tf.tidy(() => {
        const out = model.forward({ inputIds: tf.tensor2d([input], undefined, "int32"), cache }, inferenceContext());
        logitsRow = lastRow(out.logits);
        if (out.cache) {
          nextCache = out.cache;
          for (const t of [...out.cache.keys, ...out.cache.values]) tf.keep(t);
        }
      });
      if (useCache) {
        disposeCache(cache);
        cache = nextCache;
      }
      const next = sampleToken(logitsRow!, options, rng);
      produced.push(next);
      tokens.push(next);
      pending = [next];
      options.onToken?.(next);
      if (next === eos) break;
    }
  } finally {
    disposeCache(cache);
  }
  return produced;
}
