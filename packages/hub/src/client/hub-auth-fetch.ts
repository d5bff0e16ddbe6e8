import type { HubConfig } from "./hub-config.js";
import { HubError } from "./hub-error.js";

/**
 * Characters a token may have to travel in `Authorization: Bearer <token>`: visible ASCII and
 * Latin-1 (what fetch can put in a header, and what the Hub server reads back as one `\S+` token).
 */
const SENDABLE_TOKEN = /^[\x21-\x7e\xa1-\xff]+$/;

/**
 * The `Authorization` header value for a token. Any token the Hub's operator chose works (a
 * self-hosted Hub's tokens need not start with `hf_`).
 * `what` (the operation) starts the error message.
 * @throws HubError USAGE (no status) when the token cannot be sent in an HTTP header (spaces,
 * line breaks, control characters, characters beyond Latin-1); the message never shows the token.
 */
export function authorizationHeader(token: string, what?: string): string {
  if (!SENDABLE_TOKEN.test(token)) {
    throw new HubError(
      "USAGE",
      `${what ? `${what}: ` : ""}the token (--token / HF_TOKEN) cannot be sent in an HTTP header: it has spaces, line breaks, control characters or ` +
        `characters beyond Latin-1 (check for a stray newline or quote)`,
    );
  }
  return `Bearer ${token}`;
}

/** The URL a fetch call is for. */
function requestUrl(input: string | URL | Request): string {
  return input instanceof Request ? input.url : String(input);
}

/**
 * A `fetch` to hand to @huggingface/hub instead of `accessToken` (which it refuses unless the
 * token starts with `hf_`). Requests to the Hub's own origin (`config.hubUrl`) get
 * `Authorization: Bearer <token>`, replacing whatever the library set (it sends `Bearer undefined`
 * without a token), or no Authorization header at all without a token. Requests to other origins
 * (LFS storage hosts the Hub hands out upload or download URLs for) go out untouched, so the token
 * never leaks there; redirects to another origin drop the header too (fetch does that).
 * @throws HubError USAGE at creation when the token cannot be sent in an HTTP header (`what`
 * starts the message).
 */
export function hubAuthFetch(config: Pick<HubConfig, "hubUrl" | "token">, what?: string): typeof fetch {
  const origin = new URL(config.hubUrl).origin;
  const authorization = config.token ? authorizationHeader(config.token, what) : undefined;
  return (input, init) => {
    let target: URL;
    try {
      target = new URL(requestUrl(input));
    } catch {
      return fetch(input, init);
    }
    if (target.origin !== origin) return fetch(input, init);
    const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
    headers.delete("Authorization");
    if (authorization) headers.set("Authorization", authorization);
    return fetch(input, { ...init, headers });
  };
}
