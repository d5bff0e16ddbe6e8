import type { IncomingMessage, ServerResponse } from "node:http";
import { commitHandlers } from "./commit-handlers.js";
import { HubHttpError } from "./hub-error.js";
import { HubRequest, type HubContext } from "./hub-request.js";
import { lfsHandlers } from "./lfs-handlers.js";
import { listReposHandler } from "./list-repos-handler.js";
import { repoHandlers } from "./repo-handlers.js";
import { resolveHandler } from "./resolve-handler.js";
import { parseRoute, type Route } from "./route-parser.js";
import { tagHandlers } from "./tag-handlers.js";
import { treeHandlers } from "./tree-handlers.js";
import { validateYamlHandler } from "./validate-yaml-handler.js";

/** Among the readings of an ambiguous path, the first whose repo exists (else the first). */
async function chooseRoute(ctx: HubContext, routes: Route[]): Promise<Route | undefined> {
  if (routes.length <= 1) return routes[0];
  for (const route of routes) {
    if ("repo" in route && (await ctx.storage.getRepo(route.repo))) return route;
  }
  return routes[0];
}

function methodNotAllowed(hr: HubRequest): never {
  throw new HubHttpError(405, `Method ${hr.method} not allowed on ${hr.url.pathname}`);
}

let xetWarned = false;

/** huggingface_hub ≥ 1 uploads over Xet whenever hf_xet is installed, without asking the LFS batch API first. */
function xetUnsupported(hr: HubRequest): never {
  if (!xetWarned) {
    xetWarned = true;
    hr.ctx.logger.warn("a client asked for Xet storage, which this server does not provide: set HF_HUB_DISABLE_XET=1 for huggingface_hub");
  }
  throw new HubHttpError(501, "Xet storage is not supported by this server: set HF_HUB_DISABLE_XET=1 to upload over git-lfs");
}

async function dispatch(hr: HubRequest, route: Route): Promise<void> {
  const m = hr.method;
  const read = m === "GET" || m === "HEAD";
  switch (route.name) {
    case "whoami":
      return read ? repoHandlers.whoami(hr) : methodNotAllowed(hr);
    case "create-repo":
      return m === "POST" ? repoHandlers.create(hr) : methodNotAllowed(hr);
    case "delete-repo":
      return m === "DELETE" ? repoHandlers.remove(hr) : methodNotAllowed(hr);
    case "validate-yaml":
      return m === "POST" ? validateYamlHandler(hr) : methodNotAllowed(hr);
    case "list-repos":
      return read ? listReposHandler(hr, route.type) : methodNotAllowed(hr);
    case "lfs-batch":
      return m === "POST" ? lfsHandlers.batch(hr, route.repo) : methodNotAllowed(hr);
    case "lfs-object":
      if (route.direction === "upload") return m === "PUT" ? lfsHandlers.upload(hr, route.repo, route.oid) : methodNotAllowed(hr);
      return read ? lfsHandlers.download(hr, route.repo, route.oid) : methodNotAllowed(hr);
    case "resolve":
      return read ? resolveHandler(hr, route.repo, route.rest, route.raw) : methodNotAllowed(hr);
    case "repo-api": {
      const { repo, rest } = route;
      switch (route.action) {
        case "info":
          return read ? repoHandlers.info(hr, repo, rest) : methodNotAllowed(hr);
        case "tree":
          return read ? treeHandlers.tree(hr, repo, rest) : methodNotAllowed(hr);
        case "paths-info":
          return m === "POST" ? treeHandlers.pathsInfo(hr, repo, rest) : methodNotAllowed(hr);
        case "preupload":
          return m === "POST" ? commitHandlers.preupload(hr, repo, rest) : methodNotAllowed(hr);
        case "commit":
          return m === "POST" ? commitHandlers.commit(hr, repo, rest) : methodNotAllowed(hr);
        case "refs":
          return read ? repoHandlers.refs(hr, repo) : methodNotAllowed(hr);
        case "branch":
          return m === "POST" || m === "DELETE" ? repoHandlers.branch(hr, repo, rest) : methodNotAllowed(hr);
        case "tag":
          return m === "POST" ? tagHandlers.create(hr, repo, rest) : m === "DELETE" ? tagHandlers.remove(hr, repo, rest) : methodNotAllowed(hr);
        case "commits":
          return read ? repoHandlers.commits(hr, repo, rest) : methodNotAllowed(hr);
        case "settings":
          return m === "PUT" ? repoHandlers.settings(hr, repo) : methodNotAllowed(hr);
        case "xet-write-token":
        case "xet-read-token":
          return xetUnsupported(hr);
      }
    }
  }
}

/** Headers a web page reading files (resolve URLs) from another origin needs, as the Hugging Face Hub sends them. */
const CORS_HEADERS = {
  "Access-Control-Allow-Origin": "*",
  "Access-Control-Expose-Headers": "ETag, X-Repo-Commit, X-Linked-Etag, X-Linked-Size, X-Error-Code, X-Error-Message, Content-Length, Content-Range",
};

/**
 * A CORS preflight (OPTIONS with Access-Control-Request-Method): answered for reads, so pages may
 * send `Authorization` (a token) and `Range` with GET / HEAD from any origin.
 */
function answerPreflight(req: IncomingMessage, res: ServerResponse): boolean {
  if (req.method !== "OPTIONS" || req.headers["access-control-request-method"] === undefined) return false;
  res
    .writeHead(204, {
      ...CORS_HEADERS,
      "Access-Control-Allow-Methods": "GET, HEAD",
      "Access-Control-Allow-Headers": "Authorization, Range, Content-Type",
      "Access-Control-Max-Age": "600",
    })
    .end();
  return true;
}

/**
 * The server's request listener: identifies the caller, routes, and turns every failure into a
 * JSON error (`{ error }` + `X-Error-Code`/`X-Error-Message`). Unexpected failures are logged
 * (without query strings, which may hold signed-URL signatures) and answered with a 500.
 */
export function createRequestHandler(ctx: HubContext): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    if (answerPreflight(req, res)) return;
    for (const [name, value] of Object.entries(CORS_HEADERS)) res.setHeader(name, value);
    void (async () => {
      const caller = await ctx.auth.identify(req);
      const hr = new HubRequest(req, res, ctx, caller);
      try {
        const route = await chooseRoute(ctx, parseRoute(hr.url.pathname));
        if (!route) throw new HubHttpError(404, `Not found: ${hr.method} ${hr.url.pathname}`);
        await dispatch(hr, route);
      } catch (error) {
        if (error instanceof HubHttpError) {
          hr.sendError(error);
          return;
        }
        ctx.logger.warn(`${hr.method} ${hr.url.pathname} failed: ${error instanceof Error ? error.message : String(error)}`);
        hr.sendError(new HubHttpError(500, "Internal server error"));
      }
    })().catch((error: unknown) => {
      ctx.logger.warn(`request failed: ${error instanceof Error ? error.message : String(error)}`);
      if (!res.headersSent) res.writeHead(500, { "Content-Type": "application/json" }).end('{"error":"Internal server error"}');
      else res.destroy();
    });
  };
}
