import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { timingSafeEqual } from "node:crypto";
import { silentLogger, type Logger } from "@lowrank/core";
import { chatJob, chatResponse, completionJob, completionResponse, runJob, streamJob, type RequestLimits } from "./completions.js";
import { chatRequest, completionRequest, loadAdapterRequest, parseRequest, unloadAdapterRequest } from "./openai-requests.js";
import type { ServeEngine } from "./serve-engine.js";
import { badRequest, notFound, ServeError } from "./serve-error.js";

export interface ServeServerOptions {
  engine: ServeEngine;
  port?: number;
  host?: string;
  /** Bearer token every /v1 request must carry (none: open). */
  token?: string;
  /** Largest request body in bytes (default 1 MB). */
  maxBodyBytes?: number;
  /** Largest max_tokens (default 4096, and never past the model's context). */
  maxTokens?: number;
  /** How long `close` lets in-flight requests finish before cancelling them (default 30 s). */
  drainMs?: number;
  logger?: Logger;
}

export interface ServeServer {
  url: string;
  /** Stops accepting requests, lets in-flight ones finish (cancels them after drainMs), releases the engine. */
  close(): Promise<void>;
}

/**
 * An OpenAI-compatible HTTP server over a ServeEngine: /v1/models, /v1/completions,
 * /v1/chat/completions (JSON or server-sent events), vLLM's /v1/load_lora_adapter and
 * /v1/unload_lora_adapter, and /health.
 */
export async function startServeServer(options: ServeServerOptions): Promise<ServeServer> {
  const { engine } = options;
  const logger = options.logger ?? silentLogger;
  const limits: RequestLimits = { maxTokens: Math.min(options.maxTokens ?? 4096, engine.contextLength), contextLength: engine.contextLength };
  const maxBody = options.maxBodyBytes ?? 1 << 20;
  const inFlight = new Set<AbortController>();
  let closing = false;

  const server = createServer((req, res) => {
    const controller = new AbortController();
    inFlight.add(controller);
    // The client going away cancels its generation.
    res.on("close", () => {
      if (!res.writableFinished) controller.abort();
      inFlight.delete(controller);
    });
    handle(req, res, controller.signal).catch((error: unknown) => {
      const failure = error instanceof ServeError ? error : new ServeError(500, "server_error", "internal_error", (error as Error).message);
      if (failure.status >= 500) logger.warn(`serve: ${req.method} ${req.url}: ${failure.message}`);
      if (res.headersSent) res.end();
      else sendJson(res, failure.status, failure.toBody());
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse, signal: AbortSignal): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    const route = `${req.method} ${url.pathname.replace(/\/+$/, "") || "/"}`;
    if (route === "GET /health") return sendJson(res, closing ? 503 : 200, { status: closing ? "shutting down" : "ok", ...engine.load });
    if (!url.pathname.startsWith("/v1/")) throw notFound(`no route ${req.method} ${url.pathname}`, "not_found");
    authorize(req, options.token);
    if (closing) throw new ServeError(503, "server_error", "shutting_down", "the server is shutting down");
    switch (route) {
      case "GET /v1/models":
        return sendJson(res, 200, modelList(engine));
      case "POST /v1/completions":
      case "POST /v1/chat/completions": {
        const chat = route.endsWith("chat/completions");
        const body = await readJson(req, maxBody);
        const request = chat ? parseRequest(chatRequest, body) : parseRequest(completionRequest, body);
        if (request.model !== engine.modelName && !engine.adapters.has(request.model)) throw notFound(`The model \`${request.model}\` does not exist.`);
        const job = chat ? chatJob(engine, request as never, limits) : completionJob(engine, request as never, limits);
        if (request.stream) {
          res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
          await streamJob(engine, job, chat, request.stream_options?.include_usage === true, signal, (chunk) => {
            res.write(`data: ${JSON.stringify(chunk)}\n\n`);
          });
          res.end("data: [DONE]\n\n");
          return;
        }
        const results = await runJob(engine, job, signal);
        return sendJson(res, 200, chat ? chatResponse(engine, job, results) : completionResponse(engine, job, results));
      }
      case "POST /v1/load_lora_adapter": {
        const { lora_name, lora_path } = parseRequest(loadAdapterRequest, await readJson(req, maxBody));
        if (lora_name === engine.modelName) throw badRequest(`"${lora_name}" is the base model's name`, "adapter_exists");
        await engine.adapters.register(lora_name, lora_path);
        logger.info(`serve: loaded adapter "${lora_name}" from ${lora_path}`);
        return sendText(res, 200, `Success: LoRA adapter '${lora_name}' added successfully.`);
      }
      case "POST /v1/unload_lora_adapter": {
        const { lora_name } = parseRequest(unloadAdapterRequest, await readJson(req, maxBody));
        engine.adapters.unregister(lora_name);
        return sendText(res, 200, `Success: LoRA adapter '${lora_name}' removed successfully.`);
      }
      default:
        throw notFound(`no route ${req.method} ${url.pathname}`, "not_found");
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 8000, options.host ?? "127.0.0.1", () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}`,
    async close() {
      closing = true;
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      const timer = setTimeout(() => {
        for (const c of inFlight) c.abort();
      }, options.drainMs ?? 30_000);
      await engine.close();
      clearTimeout(timer);
      server.closeIdleConnections();
      await stopped;
    },
  };
}

function authorize(req: IncomingMessage, token: string | undefined): void {
  if (token === undefined) return;
  const given = /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1] ?? "";
  const [a, b] = [Buffer.from(given), Buffer.from(token)];
  if (a.length !== b.length || !timingSafeEqual(a, b))
    throw new ServeError(401, "authentication_error", "invalid_api_key", "missing or wrong bearer token (Authorization: Bearer <token>)");
}

function modelList(engine: ServeEngine) {
  const created = Math.floor(engine.startedAt / 1000);
  const entry = (id: string, parent: string | null, root: string) => ({ id, object: "model", created, owned_by: "lowrank", root, parent });
  return {
    object: "list",
    data: [
      entry(engine.modelName, null, engine.modelDir),
      ...engine.adapters.names().map((name) => entry(name, engine.modelName, engine.adapters.sourceOf(name)!)),
    ],
  };
}

async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const declared = Number(req.headers["content-length"] ?? 0);
  if (declared > limit) throw new ServeError(413, "invalid_request_error", "request_too_large", `the request body is larger than ${limit} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new ServeError(413, "invalid_request_error", "request_too_large", `the request body is larger than ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw badRequest("the request body is not valid JSON", "invalid_json");
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

function sendText(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8" });
  res.end(text);
}
