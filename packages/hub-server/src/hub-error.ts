/**
 * Hub-compatible HTTP errors: a status, an optional Hugging Face error code (sent as
 * `X-Error-Code`, which `huggingface_hub` maps to typed exceptions) and a one-line message.
 */

/** Error codes understood by the Hugging Face clients. */
export type HubErrorCode = "RepoNotFound" | "RevisionNotFound" | "EntryNotFound" | "GatedRepo" | "DisabledRepo";

/** An error that the server turns into a JSON response `{ error }` with the given status. */
export class HubHttpError extends Error {
  /** Extra fields of the JSON body besides `error` (e.g. `url` of an existing repo on 409). */
  extra: Record<string, unknown> = {};

  constructor(
    readonly status: number,
    message: string,
    readonly code?: HubErrorCode,
    /** Close the connection after answering (used when an oversized body is still arriving). */
    readonly closeConnection = false,
  ) {
    super(message.replace(/[\r\n]+/g, " "));
    this.name = "HubHttpError";
  }

  /** Adds fields to the JSON body of the error response. */
  withBody(extra: Record<string, unknown>): this {
    this.extra = { ...this.extra, ...extra };
    return this;
  }

  static badRequest(message: string): HubHttpError {
    return new HubHttpError(400, message);
  }

  static repoNotFound(repo: string, status = 404): HubHttpError {
    return new HubHttpError(status, `Repository not found: ${repo}`, "RepoNotFound");
  }

  static revisionNotFound(repo: string, revision: string): HubHttpError {
    return new HubHttpError(404, `Invalid rev id: ${revision} (repository ${repo})`, "RevisionNotFound");
  }

  static entryNotFound(path: string, revision: string): HubHttpError {
    return new HubHttpError(404, `Entry not found: ${path} at revision ${revision}`, "EntryNotFound");
  }
}
