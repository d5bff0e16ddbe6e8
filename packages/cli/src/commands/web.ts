import { stat } from "node:fs/promises";
import { LowrankError } from "@lowrank/core";
import type { CliContext } from "../cli-context.js";
import { startWebServer } from "../web/web-server.js";
import { numberFlag } from "./parse-flags.js";
import { adapterPairs } from "./serve.js";

export interface WebOptions {
  model: string;
  adapter?: string[];
  port?: string;
  host?: string;
  logRequests?: boolean;
  hubUrl?: string;
}

/**
 * `lowrank web`: serves the browser example page with a model and adapters (static files only; the
 * browser computes) until SIGINT / SIGTERM. A checkpoint folder's decoder graph (with its key/value
 * cache) is built once at start; a .onnx file is served as it is.
 */
export async function webCommand(ctx: CliContext, o: WebOptions): Promise<void> {
  const [{ pageDir }, { onnxSourceOf }, hub] = await Promise.all([
    import("@lowrank/browser-example"),
    import("@lowrank/backend-onnx/internal"),
    import("@lowrank/hub"),
  ]);
  if (!(await stat(`${pageDir}/app.js`).catch(() => undefined)))
    throw new LowrankError("USAGE", `${pageDir}: the page is not built (run \`npx -y pnpm@12.4.2 build\`)`);
  const hubConfig = hub.resolveHubConfig({ hubUrl: o.hubUrl });
  const model = await onnxSourceOf(await hub.resolveLocation(o.model, hubConfig));
  const adapters: Record<string, string> = {};
  for (const [name, location] of Object.entries(adapterPairs(o.adapter ?? []))) {
    const dir = await hub.resolveLocation(location, hubConfig);
    if (!(await stat(dir).catch(() => undefined))?.isDirectory()) throw new LowrankError("USAGE", `--adapter ${name}=${location}: no such adapter folder`);
    adapters[name] = dir;
  }
  const server = await startWebServer(
    {
      pageDir,
      model: { name: o.model, bytes: model.bytes, dir: model.dir },
      adapters,
      hubUrl: hubConfig.hubUrl,
      onRequest: o.logRequests ? (line) => ctx.out(line) : undefined,
    },
    { port: numberFlag("--port", o.port, { integer: true, min: 0, max: 65535 }) ?? 8080, host: o.host ?? "127.0.0.1" },
  );
  ctx.out(`lowrank web: ${o.model} (+ ${Object.keys(adapters).length} adapters) at ${server.url}`);
  await new Promise<void>((done) => {
    const stop = () => void server.close().then(done);
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
}
