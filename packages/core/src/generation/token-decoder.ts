import { LowrankError } from "../errors/lowrank-error.js";
import { SeededRandom } from "../math/random.js";
import { sampleToken, type SamplingOptions } from "./sample-token.js";

/** What every backend's generation loop takes: sampling, length, stop token, seed. */
export interface DecodeOptions extends SamplingOptions {
  maxNewTokens: number;
  /** Stop after this token (or any of these, as generation_config.json may list several). */
  eosTokenId?: number | readonly number[];
  seed?: number;
  /** Called with each new token as it is chosen. */
  onToken?: (token: number) => void;
}

/**
 * The backend-neutral half of generation: chooses each next token from a row of logits (greedy, or
 * temperature / top-k / top-p from one seeded generator) and decides when to stop (EOS or
 * maxNewTokens). A backend runs its model and hands each last-position logits row to `next`; both
 * backends therefore produce the same tokens from the same logits and seed.
 */
export class TokenDecoder {
  readonly produced: number[] = [];
  private readonly rng: SeededRandom;
  private readonly eos: ReadonlySet<number>;
  private stopped = false;

  /** @throws LowrankError USAGE for an empty prompt or a negative maxNewTokens. */
  constructor(
    prompt: readonly number[],
    private readonly options: DecodeOptions,
  ) {
    if (prompt.length === 0) throw new LowrankError("USAGE", "the prompt is empty");
    if (!(options.maxNewTokens >= 0)) throw new LowrankError("USAGE", `maxNewTokens must be 0 or more, got ${options.maxNewTokens}`);
    this.rng = new SeededRandom(options.seed ?? 0);
    const eos = options.eosTokenId;
    this.eos = new Set(eos === undefined ? [] : typeof eos === "number" ? [eos] : eos);
  }

  /** Whether generation has ended (EOS produced, or maxNewTokens reached). */
  get done(): boolean {
    return this.stopped || this.produced.length >= this.options.maxNewTokens;
  }

  /** Chooses the next token from the last position's logits; returns it. */
  next(logits: Float32Array): number {
    const token = sampleToken(logits, this.options, this.rng);
    this.produced.push(token);
    this.options.onToken?.(token);
    if (this.eos.has(token)) this.stopped = true;
    return token;
  }
}
