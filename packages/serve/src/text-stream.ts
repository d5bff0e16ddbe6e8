import type { TextTokenizer } from "@lowrank/core";

/**
 * Generated tokens as text, released as soon as it is final: a trailing incomplete character (the
 * tokenizer's U+FFFD) and any tail that could begin a stop string are held back; once a stop string
 * appears the text ends before it. Without a tokenizer the text stays empty (token ids only).
 */
export class TextStream {
  private readonly ids: number[] = [];
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
    this.text = this.tokenizer.decode(this.ids);
    const at = this.stops.map((s) => this.text.indexOf(s)).filter((i) => i >= 0);
    if (at.length > 0) {
      this.stopped = true;
      return this.take(Math.min(...at));
    }
    let end = this.text.endsWith("\uFFFD") ? this.text.length - 1 : this.text.length;
    end -= this.stopPrefixAt(end);
    return this.take(Math.max(end, this.released));
  }

  /** The text held back, at the end of generation (none after a stop string). */
  finish(): string {
    return this.stopped ? "" : this.take(this.text.length);
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
