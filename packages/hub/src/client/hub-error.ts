import { LowrankError, type LowrankErrorCode } from "@lowrank/core";

/** Marks HubErrors across copies of this module (ESM and CJS builds). */
const BRAND = Symbol.for("@lowrank/hub:HubError");

/**
 * The URL of a request as kept on an error: scheme, host and path only. User info and the query
 * string are dropped (signed upload/download URLs carry their signature there).
 */
export function errorUrl(url: string | undefined): string | undefined {
  if (!url) return undefined;
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return undefined;
  }
}

/**
 * A failed Hub request: a LowrankError (one-line message, `code`, `usage`) that also keeps the HTTP
 * `status` the Hub answered (undefined when no answer came: a network failure, or a request refused
 * before it was sent) and the `url` asked (without query string), so 401, 403 and 404 can be told
 * apart without reading the message. Neither field nor the message ever holds the token.
 */
export class HubError extends LowrankError {
  /** `instanceof` holds for a HubError made by any copy of @lowrank/hub. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }

  /** HTTP status of the Hub's answer, when there was one. */
  readonly status?: number;
  /** The request's URL (scheme, host, path), when known. */
  readonly url?: string;

  constructor(code: LowrankErrorCode, message: string, options: { status?: number; url?: string; cause?: unknown; usage?: boolean } = {}) {
    super(code, message, { cause: options.cause, usage: options.usage });
    this.name = "HubError";
    Object.defineProperty(this, BRAND, { value: true });
    if (options.status !== undefined) this.status = options.status;
    const url = errorUrl(options.url);
    if (url !== undefined) this.url = url;
  }
}
