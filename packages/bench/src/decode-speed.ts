import type { OnnxLoraSession } from "@lowrank/backend-onnx";
import { generateWithKvCache, type KvLayout } from "@lowrank/backend-onnx/internal";
import { spread, type Spread } from "./stats.js";

export interface DecodeTimingParams {
  prompt: readonly number[];
  newTokens: number;
  /** Timed generations, after one untimed warm-up. */
  repeats: number;
  adapter: string | null;
}

/**
 * Milliseconds per new token after the prefill, at batch 1 with the key/value cache: each
 * generation's last token time minus its first (the prefill's), over the steps between them. The
 * spread is over the timed generations.
 */
export async function timeDecodeSteps(session: OnnxLoraSession, layout: KvLayout, params: DecodeTimingParams): Promise<Spread> {
  if (params.newTokens < 2) throw new Error(`bench: decode timing needs at least 2 new tokens, got ${params.newTokens}`);
  const perToken: number[] = [];
  for (let run = 0; run <= params.repeats; run++) {
    const at: number[] = [];
    await generateWithKvCache(session, layout, params.prompt, {
      maxNewTokens: params.newTokens,
      eosTokenId: [],
      adapter: params.adapter,
      onToken: () => void at.push(performance.now()),
    });
    if (run > 0) perToken.push((at.at(-1)! - at[0]!) / (at.length - 1));
  }
  return spread(perToken);
}
