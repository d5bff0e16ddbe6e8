import type { IncomingMessage, ServerResponse } from "node:http";
import type { HubStorage, RepoMeta } from "./hub-storage.js";
import { HubHttpError } from "./hub-error.js";
import type { Caller, TokenAuth } from "./token-auth.js";
import type { UrlSigner } from "./url-signer.js";
import { repoLabel, type RepoRef } from "./validation.js";

/** Minimal logger the server reports to. */
export interface HubLogger {
  info(message: string): void;
  warn(message: string): void;
}

/** Size limits of request bodies, in bytes. */
export interface HubLimits {
  /** JSON / NDJSON bodies (commits carry small files inline as base64). */
  body: number;
  /** One LFS object uploaded with PUT (streamed to disk, never held in memory). */
  lfsObject: number;
}

/** Everything the handlers share for the lifetime of a server. */
export interface HubContext {
  storage: HubStorage;
  limits: HubLimits;
  auth: TokenAuth;
  signer: UrlSigner;
  logger: HubLogger;
  /** Base URL used when a request carries no usable Host header. */
  fallbackUrl: string;
}

/** Default limit of JSON/NDJSON request bodies. */
export const MAX_JSON_BODY = 100 * 1024 * 1024;

/** One request being served: parsed URL, caller, body reading and response helpers. */
export class HubRequest {
  readonly url: URL;

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly ctx: HubContext,
    readonly caller: Caller,
  ) {
    this.url = new URL(req.url ?? "/", "http://localhost");
  }

  get method(): string {
    return (this.req.method ?? "GET").toUpperCase();
  }

  /**
   * Base URL of the server as the client reached it (Host header, honouring X-Forwarded-Proto/Host
   * from a reverse proxy), used for the URLs put in responses.
   */
  get baseUrl(): string {
    const forwardedProto = (String(this.req.headers["x-forwarded-proto"] ?? "").split(",")[0] ?? "").trim();
    const proto = forwardedProto === "https" || forwardedProto === "http" ? forwardedProto : "http";
    const host = (String(this.req.headers["x-forwarded-host"] ?? this.req.headers.host ?? "").split(",")[0] ?? "").trim();
    return /^[A-Za-z0-9.-]+(:\d+)?$|^\[[0-9A-Fa-f:.]+\](:\d+)?$/.test(host) ? `${proto}://${host}` : this.ctx.fallbackUrl;
  }

  /** True when a query flag is set ("1", "true", "True", or present without value). */
  flag(name: string): boolean {
    const value = this.url.searchParams.get(name);
    return value !== null && ["", "1", "true", "yes"].includes(value.toLowerCase());
  }

  /** Sends a JSON response. */
  sendJson(status: number, body: unknown, headers: Record<string, string> = {}, contentType = "application/json; charset=utf-8"): void {
    const payload = Buffer.from(JSON.stringify(body), "utf8");
    this.res.writeHead(status, { ...headers, "Content-Type": contentType, "Content-Length": String(payload.byteLength) });
    this.res.end(this.method === "HEAD" ? undefined : payload);
  }

  /** Sends `{ error }` with the Hub's `X-Error-Code` / `X-Error-Message` headers. */
  sendError(error: HubHttpError): void {
    if (this.res.headersSent) {
      this.res.destroy();
      return;
    }
    const headers: Record<string, string> = { "X-Error-Message": toHeaderValue(error.message) };
    if (error.code) headers["X-Error-Code"] = error.code;
    if (error.closeConnection) headers.Connection = "close";
    this.sendJson(error.status, { ...error.extra, error: error.message }, headers);
  }

  /**
   * Reads the whole body; 413 (closing the connection) above `limit` bytes or the server's body
   * limit, whichever is smaller — checked against Content-Length first, then while reading.
   */
  async readBody(limit = this.ctx.limits.body): Promise<Buffer> {
    limit = Math.min(limit, this.ctx.limits.body);
    const declared = Number(this.req.headers["content-length"] ?? NaN);
    if (declared > limit) throw new HubHttpError(413, `Request body too large (limit ${limit} bytes)`, undefined, true);
    const chunks: Buffer[] = [];
    let total = 0;
    for await (const chunk of this.req as AsyncIterable<Buffer>) {
      total += chunk.byteLength;
      if (total > limit) throw new HubHttpError(413, `Request body too large (limit ${limit} bytes)`, undefined, true);
      chunks.push(chunk);
    }
    return Buffer.concat(chunks);
  }

  /** Reads and parses a JSON body; 400 when it is not valid JSON. */
  async readJson(limit = this.ctx.limits.body): Promise<unknown> {
    const body = await this.readBody(limit);
    try {
      return JSON.parse(body.toString("utf8"));
    } catch {
      throw HubHttpError.badRequest("Request body is not valid JSON");
    }
  }

  /**
   * Loads a repo the caller may access: a missing repo is 404 RepoNotFound; a private repo the
   * caller may not read is 401 RepoNotFound (as the Hub answers unauthenticated requests). Writes
   * need write access first, so unauthorized writers learn nothing about the repo.
   */
  async openRepo(ref: RepoRef, access: "read" | "write"): Promise<RepoMeta> {
    if (access === "write") this.caller.assertCanWrite();
    else this.caller.assertCredentialsValid();
    const meta = await this.ctx.storage.getRepo(ref);
    if (!meta) throw HubHttpError.repoNotFound(repoLabel(ref));
    if (meta.private && !this.caller.canReadPrivate) {
      throw new HubHttpError(401, `Repository not found: ${repoLabel(ref)} (it may be private: a valid token is required)`, "RepoNotFound");
    }
    return meta;
  }
}

function toHeaderValue(message: string): string {
  return message.replace(/[^\x20-\x7e]/g, "?").slice(0, 1000);
}
