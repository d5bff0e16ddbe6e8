import type { TextTokenizer } from "@lowrank/core";

/**
 * Generated tokens as text, released as soon as it is final: a trailing incomplete character (the
 * tokenizer's U+FFFD) and any tail that could begin a stop string are held back; once a stop string
 * appears the text ends before it. Without a tokenizer the text stays empty (token ids only).
 */
export class TextStream {
  private readonly ids: number[] = [];
  /** Decoding in windows (as TGI does): text of ids[prefix, read) is already in `text`; only ids from `prefix` are decoded again. */
  private prefix = 0;
  private read = 0;
  private released = 0;
  private text = "";
  stopped = false;

  constructor(
    private readonly tokenizer: TextTokenizer | undefined,
    private readonly stops: readonly string[],
  ) {}

  /** Adds a token; returns the text it releases (possibly empty). */
  push(token: number): string {
    if (this.stopped || !this.tokenizer) return "";
    this.ids.push(token);
    // A character still being spelled (U+FFFD at the end) waits for its next token.
    this.decodeNew(false);
    const at = this.stops.map((s) => this.text.indexOf(s, this.released)).filter((i) => i >= 0);
    if (at.length > 0) {
      this.stopped = true;
      return this.take(Math.min(...at));
    }
    return this.take(Math.max(this.text.length - this.stopPrefixAt(this.text.length), this.released));
  }

  /** The text held back, at the end of generation (none after a stop string). */
  finish(): string {
    if (this.stopped) return "";
    this.decodeNew(true);
    return this.take(this.text.length);
  }

  /** Appends the text of the tokens since `read`, decoded with those since `prefix` (so word boundaries come out as in one decode). */
  private decodeNew(final: boolean): void {
    const decode = (ids: number[]) => (ids.length === 0 ? "" : this.tokenizer!.decode(ids));
    const before = decode(this.ids.slice(this.prefix, this.read));
    const after = decode(this.ids.slice(this.prefix));
    if (after.length <= before.length || (!final && after.endsWith("\uFFFD"))) return;
    this.text += after.slice(before.length);
    this.prefix = this.read;
    this.read = this.ids.length;
  }

  private take(end: number): string {
    const out = this.text.slice(this.released, end);
    this.released = end;
    return out;
  }

  /** The length of the longest tail of text[0, end) that is a proper prefix of a stop string. */
  private stopPrefixAt(end: number): number {
    let longest = 0;
    for (const stop of this.stops)
      for (let n = Math.min(stop.length - 1, end); n > longest; n--) if (this.text.slice(end - n, end) === stop.slice(0, n)) longest = n;
    return longest;
  }
}
