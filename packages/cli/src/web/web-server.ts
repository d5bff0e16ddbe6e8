import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".wasm": "application/wasm",
  ".json": "application/json; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".jinja": "text/plain; charset=utf-8",
};

export interface WebSite {
  /** The built page's folder (index.html, app.js, ort/). */
  pageDir: string;
  /** The model's bytes (a built graph or the .onnx file read), its name, and the folder of its side files. */
  model: { name: string; bytes: Uint8Array; dir: string };
  /** Adapter folders by name. */
  adapters: Record<string, string>;
  /** The Hub the page reads repositories from (its resolve URLs; the user gives the token on the page). */
  hubUrl?: string;
  /** Called with each request's method, path and status (--log-requests). */
  onRequest?: (line: string) => void;
}

export interface RunningWebServer {
  url: string;
  close(): Promise<void>;
}

/**
 * `lowrank web`'s server: static files only — the page, onnxruntime-web's files, the model
 * (/model/model.onnx and the JSON / tokenizer files beside it under /model/), each adapter's files
 * (/adapters/NAME/) and /lowrank.json naming them. The browser does all the computing. Pages are
 * served cross-origin isolated (COOP + COEP) so onnxruntime-web may use threads.
 */
export async function startWebServer(site: WebSite, options: { port: number; host: string }): Promise<RunningWebServer> {
  const manifest = JSON.stringify({
    model: { name: site.model.name, url: "model/model.onnx", files: "model/" },
    adapters: Object.fromEntries(Object.keys(site.adapters).map((name) => [name, `adapters/${encodeURIComponent(name)}/`])),
    ...(site.hubUrl ? { hub: site.hubUrl } : {}),
  });
  const server = createServer((request, response) => {
    void serve(site, manifest, request, response).then(
      (status) => site.onRequest?.(`${request.method} ${request.url} ${status}`),
      (error: Error) => {
        if (!response.headersSent) response.writeHead(500).end(error.message);
        site.onRequest?.(`${request.method} ${request.url} 500 (${error.message})`);
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${options.host.includes(":") ? `[${options.host}]` : options.host}:${port}/`,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections(); // browsers keep connections open
      }),
  };
}

const ISOLATION = { "cross-origin-opener-policy": "same-origin", "cross-origin-embedder-policy": "require-corp", "cache-control": "no-cache" };

function contentType(file: string): string {
  return CONTENT_TYPES[path.extname(file)] ?? "application/octet-stream";
}

/**
 * A plain file directly in `dir` with its size, or undefined. The name can hold no separator and no
 * leading dot, so the path stays inside `dir`.
 */
async function fileIn(dir: string, name: string): Promise<{ path: string; size: number } | undefined> {
  if (!name || name.startsWith(".") || name.includes("/") || name.includes("\\")) return undefined;
  const file = path.join(dir, name);
  const info = await stat(file).catch(() => undefined);
  return info?.isFile() ? { path: file, size: info.size } : undefined;
}

async function serve(site: WebSite, manifest: string, request: IncomingMessage, response: ServerResponse): Promise<number> {
  if (request.method !== "GET" && request.method !== "HEAD") {
    response.writeHead(405, { allow: "GET, HEAD" }).end();
    return 405;
  }
  const url = new URL(request.url ?? "/", "http://localhost");
  const parts = url.pathname.split("/").slice(1).map(decodeURIComponent);
  const send = (status: number, body: string | Uint8Array, type: string) => {
    response.writeHead(status, { ...ISOLATION, "content-type": type, "content-length": Buffer.byteLength(body) });
    response.end(request.method === "HEAD" ? undefined : body);
    return status;
  };
  const sendFile = (file: { path: string; size: number }) =>
    new Promise<number>((resolve, reject) => {
      response.writeHead(200, { ...ISOLATION, "content-type": contentType(file.path), "content-length": file.size });
      if (request.method === "HEAD") return void response.end(() => resolve(200));
      createReadStream(file.path)
        .on("error", reject)
        .pipe(response)
        .on("finish", () => resolve(200));
    });
  const [first, second, third] = parts;
  if (url.pathname === "/lowrank.json") return send(200, manifest, CONTENT_TYPES[".json"]!);
  if (first === "model" && parts.length === 2) {
    if (second === "model.onnx") return send(200, site.model.bytes, "application/octet-stream");
    const file = second === undefined ? undefined : await fileIn(site.model.dir, second);
    // Only the side files a page reads (configs, tokenizer); never the checkpoint's weights.
    if (file && /\.(json|jinja)$/.test(file.path)) return sendFile(file);
  } else if (first === "adapters" && parts.length === 3 && second !== undefined && Object.hasOwn(site.adapters, second)) {
    const file = third === undefined ? undefined : await fileIn(site.adapters[second]!, third);
    if (file) return sendFile(file);
  } else {
    const relative = url.pathname === "/" ? ["index.html"] : parts;
    if (relative.length <= 2 && relative.every((p) => p && !p.startsWith("."))) {
      const dir = relative.length === 2 ? path.join(site.pageDir, relative[0]!) : site.pageDir;
      const file = await fileIn(dir, relative.at(-1)!);
      if (file) return sendFile(file);
    }
  }
  return send(404, `not found: ${url.pathname}`, "text/plain; charset=utf-8");
}
