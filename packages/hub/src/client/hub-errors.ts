import { redact } from "./hub-config.js";
import { authorizationHeader } from "./hub-auth-fetch.js";
import { HubError } from "./hub-error.js";

/** The first `limit` bytes of a body as text; the rest is not read (an error page may be huge). */
async function readStart(response: Response, limit: number): Promise<string> {
  if (!response.body) return "";
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    while (total < limit) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      total += value.byteLength;
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  return Buffer.concat(chunks).subarray(0, limit).toString("utf8");
}

/**
 * One clear error for a failed Hub answer: 401/403 say a token is missing or lacks access, 404 says
 * what was not found (the Hub's X-Error-Code), others give the status and the server's message.
 * Returns a HubError whose `status` is the answer's status and `url` the answer's URL (else `url`,
 * the URL asked); USAGE for 401/403/404, IO_ERROR otherwise. The token never appears.
 */
export async function hubResponseError(response: Response, what: string, token: string | undefined, url?: string): Promise<HubError> {
  let message = response.headers.get("x-error-message") ?? "";
  if (!message) {
    try {
      const body = await readStart(response, 4096);
      try {
        message = (JSON.parse(body) as { error?: string }).error ?? body;
      } catch {
        message = body;
      }
    } catch {
      message = "";
    }
  }
  message = redact((message.split("\n")[0] ?? "").slice(0, 200), token);
  const code = response.headers.get("x-error-code");
  const fields = { status: response.status, url: response.url || url };
  if (response.status === 401 || response.status === 403) {
    const hint = token ? "the token (--token / HF_TOKEN) has no access" : "it needs a token (--token / HF_TOKEN)";
    return new HubError(
      "USAGE",
      `${what}: ${response.status} ${response.status === 401 ? "unauthorized" : "forbidden"}: ${hint}${message ? ` (${message})` : ""}`,
      fields,
    );
  }
  if (response.status === 404) {
    const kind =
      code === "RevisionNotFound"
        ? "revision not found"
        : code === "EntryNotFound"
          ? "file not found"
          : code === "RepoNotFound"
            ? "repository not found"
            : "not found";
    return new HubError("USAGE", `${what}: 404 ${kind}${message ? ` (${message})` : ""}`, fields);
  }
  return new HubError("IO_ERROR", `${what}: the Hub answered ${response.status}${message ? ` (${message})` : ""}`, fields);
}

/**
 * fetch with the token as a bearer header (any token: a self-hosted Hub's need not start with
 * `hf_`). Returns the response, whatever its status.
 * @throws HubError USAGE when the token cannot be sent in a header (before anything is sent);
 * HubError IO_ERROR with `url` (no status) when the Hub cannot be reached. The token never appears.
 */
export async function hubFetch(url: string, init: RequestInit & { token?: string }, what: string): Promise<Response> {
  const headers = new Headers(init.headers);
  if (init.token) headers.set("Authorization", authorizationHeader(init.token, what));
  const { token, ...rest } = init;
  try {
    return await fetch(url, { ...rest, headers });
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    const reason = redact(String(cause?.code ?? cause?.message ?? (error as Error).message).split("\n")[0] ?? "", token);
    throw new HubError("IO_ERROR", `${what}: cannot reach ${new URL(url).origin} (${reason})`, { url, cause: error });
  }
}
