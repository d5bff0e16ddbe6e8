import * as tf from "@tensorflow/tfjs";
import { LowrankError } from "@lowrank/core";
import { TokenDecoder, type DecodeOptions } from "@lowrank/core/internal";
import { inferenceContext } from "../layers/lora-branch.js";
import type { KvCache, TfjsModel } from "../models/model.js";

export interface GenerateOptions extends DecodeOptions {
  /** Reuse keys and values between steps (default true); without it every step reruns the prefix. */
  useCache?: boolean;
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
  const decoder = new TokenDecoder(prompt, { ...options, eosTokenId: options.eosTokenId ?? model.eosTokenId });
  const useCache = options.useCache ?? true;
  const tokens = [...prompt];
  let cache: KvCache | undefined = useCache ? { keys: [], values: [], length: 0 } : undefined;
  let pending = prompt;
  try {
    while (!decoder.done) {
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
      const next = decoder.next(logitsRow!);
      tokens.push(next);
      pending = [next];
    }
  } finally {
    disposeCache(cache);
  }
  return decoder.produced;
}
