import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { createRequestHandler } from "./handle-request.js";
import { MAX_JSON_BODY, type HubLogger } from "./hub-request.js";
import { MAX_LFS_OBJECT } from "./lfs-handlers.js";
import { HubStorage } from "./hub-storage.js";
import { TokenAuth } from "./token-auth.js";
import { UrlSigner } from "./url-signer.js";

/** Options of {@link startHubServer}. */
export interface HubServerOptions {
  /** Storage folder (created if missing): blobs, repos, commits, refs; an optional `tokens` file. */
  dir: string;
  /** TCP port; 0 (the default) picks a free one. */
  port?: number;
  /** Interface to listen on; default "127.0.0.1". */
  host?: string;
  /** Access tokens accepted as `Authorization: Bearer <token>`, in addition to the lines of `<dir>/tokens`. */
  tokens?: string[];
  /** Receives one line per write (repo created, commit, LFS upload) and warnings. Tokens are never logged. */
  logger?: HubLogger;
  /**
   * Largest JSON / NDJSON request body (commits with inline files, LFS batches...) in bytes; larger
   * ones are answered 413 with a JSON error. Default 100 MB.
   */
  maxBodyBytes?: number;
  /** Largest LFS object accepted, in bytes (413 / a per-object 422 in batches above). Default 5 GB. */
  maxLfsObjectBytes?: number;
}

function limit(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value <= 0) throw new RangeError(`startHubServer: \`${name}\` must be a positive integer, got ${value}`);
  return value;
}

/** A running hub server. */
export interface HubServer {
  /** Base URL, e.g. `http://127.0.0.1:PORT`; pass it as `hubUrl` / `HF_ENDPOINT`. */
  url: string;
  port: number;
  /** Stops accepting connections, ends idle ones, and resolves once the server is closed. */
  close(): Promise<void>;
}

const silentLogger: HubLogger = { info: () => undefined, warn: () => undefined };

/**
 * Starts a self-hosted, Hugging Face Hub-compatible HTTP server over durable storage in
 * `options.dir`, usable by `@huggingface/hub` (with `hubUrl`) and `huggingface_hub` (with
 * `HF_ENDPOINT`): repo creation, info and listings (`/api/models?author=&search=&sort=`), tree /
 * paths-info listings, preupload, the git-lfs batch API (basic transfer), NDJSON commits, branches,
 * tags, `/api/validate-yaml` (card metadata), and `resolve` downloads with ranges.
 *
 * Authorization: when any token is configured (`options.tokens` or `<dir>/tokens`), writes need a
 * valid token and private repos need one to be read; without tokens, writes (and private reads)
 * are accepted only from loopback addresses.
 */
export async function startHubServer(options: HubServerOptions): Promise<HubServer> {
  const host = options.host ?? "127.0.0.1";
  const logger = options.logger ?? silentLogger;
  const storage = await HubStorage.open(options.dir);
  const auth = await TokenAuth.create(options.tokens ?? [], path.join(options.dir, "tokens"));
  const limits = {
    body: limit(options.maxBodyBytes, MAX_JSON_BODY, "maxBodyBytes"),
    lfsObject: limit(options.maxLfsObjectBytes, MAX_LFS_OBJECT, "maxLfsObjectBytes"),
  };
  const ctx = { storage, auth, signer: new UrlSigner(), logger, fallbackUrl: "", limits };
  // requestTimeout 0: multi-GB LFS uploads may take long; idle sockets are reaped by setTimeout below.
  const server = createServer({ requestTimeout: 0, headersTimeout: 60_000, keepAliveTimeout: 5_000 }, createRequestHandler(ctx));
  server.setTimeout(300_000);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  // Listening on all interfaces: advertise the loopback address, which always reaches this process.
  const shown = host === "0.0.0.0" ? "127.0.0.1" : host === "::" ? "::1" : host;
  const url = `http://${shown.includes(":") ? `[${shown}]` : shown}:${port}`;
  ctx.fallbackUrl = url;
  if (auth.size === 0) logger.warn("no access tokens configured: writes are accepted only from loopback addresses");
  logger.info(`hub server listening on ${url} (storage: ${path.resolve(options.dir)}, ${auth.size} token(s))`);
  let closing: Promise<void> | undefined;
  return {
    url,
    port,
    close() {
      closing ??= new Promise<void>((resolve, reject) => {
        const force = setTimeout(() => server.closeAllConnections(), 2_000);
        force.unref();
        server.close((error) => {
          clearTimeout(force);
          if (error) reject(error);
          else resolve();
        });
        server.closeIdleConnections();
      });
      return closing;
    },
  };
}
