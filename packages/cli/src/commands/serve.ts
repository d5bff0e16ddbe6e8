import { LowrankError } from "@lowrank/core";
import type { CliContext } from "../cli-context.js";
import { numberFlag } from "./parse-flags.js";

export interface ServeOptions {
  model: string;
  adapter?: string[];
  port?: string;
  host?: string;
  servedModelName?: string;
  maxBatch?: string;
  maxAdapters?: string;
  maxTokens?: string;
  maxBodyBytes?: string;
  hubUrl?: string;
  /** The accepted bearer token (the global --token's last value). */
  token?: string;
}

/** NAME=<folder or Hub id> pairs of --adapter. @throws LowrankError USAGE for a pair without a name or twice the same name. */
export function adapterPairs(values: readonly string[]): Record<string, string> {
  const pairs: Record<string, string> = {};
  for (const value of values) {
    const at = value.indexOf("=");
    if (at <= 0 || at === value.length - 1) throw new LowrankError("USAGE", `--adapter ${value}: expected NAME=<adapter folder or Hub id>`);
    const name = value.slice(0, at);
    if (name in pairs) throw new LowrankError("USAGE", `--adapter ${name} is given twice`);
    pairs[name] = value.slice(at + 1);
  }
  return pairs;
}

/**
 * `lowrank serve`: an OpenAI-compatible server for one base model and many adapters (continuous
 * batching of mixed-adapter requests on ONNX Runtime) until SIGINT / SIGTERM, which let in-flight
 * requests finish. Hub ids (model, adapters, /v1/load_lora_adapter's lora_path) are pulled with
 * HF_TOKEN; --token is the bearer token clients must send.
 */
export async function serveCommand(ctx: CliContext, o: ServeOptions): Promise<void> {
  const [{ ServeEngine, startServeServer }, hub] = await Promise.all([import("@lowrank/serve"), import("@lowrank/hub")]);
  const hubConfig = hub.resolveHubConfig({ hubUrl: o.hubUrl });
  const resolve = (location: string) => hub.resolveLocation(location, hubConfig);
  const engine = await ServeEngine.create({
    model: await resolve(o.model),
    servedModelName: o.servedModelName ?? o.model,
    adapters: adapterPairs(o.adapter ?? []),
    maxBatch: numberFlag("--max-batch", o.maxBatch, { integer: true, min: 1 }),
    maxLoadedAdapters: numberFlag("--max-adapters", o.maxAdapters, { integer: true, min: 1 }),
    resolve,
    logger: ctx.logger,
  });
  const server = await startServeServer({
    engine,
    port: numberFlag("--port", o.port, { integer: true, min: 0, max: 65535 }) ?? 8000,
    host: o.host ?? "127.0.0.1",
    token: o.token,
    maxTokens: numberFlag("--max-tokens", o.maxTokens, { integer: true, min: 1 }),
    maxBodyBytes: numberFlag("--max-body-bytes", o.maxBodyBytes, { integer: true, min: 1 }),
    logger: ctx.logger,
  });
  ctx.out(`lowrank serving ${o.servedModelName ?? o.model} (+ ${engine.adapters.names().length} adapters) at ${server.url}/v1`);
  await new Promise<void>((done) => {
    const stop = () => void server.close().then(done);
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
}
