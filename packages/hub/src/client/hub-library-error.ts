import { redact, type HubConfig } from "./hub-config.js";
import { HubError } from "./hub-error.js";

/** fetch's own failures to connect or to read an answer: undici's TypeError("fetch failed" / "terminated") with a `cause`. */
function isNetworkFailure(error: unknown): boolean {
  const e = error as { cause?: unknown; message?: unknown; code?: unknown } | null;
  if (!e || typeof e !== "object") return false;
  if (e.cause !== undefined) return true;
  return e.message === "fetch failed" || e.message === "terminated" || (typeof e.code === "string" && /^(E[A-Z]+|UND_ERR_\w+)$/.test(e.code));
}

/**
 * An error thrown by @huggingface/hub (or the fetch it was given) as the one-line HubError to
 * throw instead, without the token (`what` starts the message; `failedUrls` maps errors of
 * fetch calls to the URL they were for, kept as `url`):
 * - an HTTP answer keeps its `status` and `url`: 401/403 say what to check, 404 says not found
 *   (USAGE), other statuses give the Hub's message (IO_ERROR);
 * - a TypeError the library (or fetch) raised before sending anything (a token it cannot send,
 *   a repo id it refuses) is a USAGE error, never a network one;
 * - a connection that failed or broke off names the Hub and the network error (IO_ERROR);
 * - anything else (an answer that could not be used) is an IO_ERROR with its message.
 */
export function hubLibraryError(what: string, error: unknown, config: Pick<HubConfig, "hubUrl" | "token">, failedUrls?: WeakMap<object, string>): HubError {
  if (error instanceof HubError) return error;
  const { token } = config;
  const e = (error ?? {}) as { statusCode?: number; url?: string; message?: string; cause?: { code?: string; message?: string } };
  const status = e.statusCode;
  const firstLine = (text: unknown, max: number) => (redact(String(text), token).split("\n")[0] ?? "").slice(0, max);
  const message = firstLine(e.message ?? error, 300);
  if (status !== undefined) {
    const fields = { status, url: e.url };
    if (status === 401 || status === 403)
      return new HubError(
        "USAGE",
        `${what}: ${status} ${status === 401 ? "unauthorized" : "forbidden"}: ` +
          `${token ? "the token (--token / HF_TOKEN) has no access" : "it needs a token (--token / HF_TOKEN)"} (${message})`,
        fields,
      );
    if (status === 404) return new HubError("USAGE", `${what}: 404 not found (${message})`, fields);
    return new HubError("IO_ERROR", `${what}: the Hub answered ${status} (${message})`, fields);
  }
  const url = (typeof error === "object" && error !== null ? failedUrls?.get(error) : undefined) ?? `${config.hubUrl}/`;
  if (isNetworkFailure(error)) {
    const cause = firstLine(e.cause?.message ?? e.cause?.code ?? message, 200);
    return new HubError("IO_ERROR", `${what}: the connection to ${config.hubUrl} failed or broke off (${cause})`, { url, cause: error });
  }
  if (error instanceof TypeError) {
    const credentials = /token|credential|authori[sz]ation|header/i.test(message);
    return new HubError("USAGE", credentials ? `${what}: the token (--token / HF_TOKEN) cannot be used (${message})` : `${what}: ${message}`, { cause: error });
  }
  return new HubError("IO_ERROR", `${what}: the Hub's answer could not be used (${message})`, { url, cause: error });
}
