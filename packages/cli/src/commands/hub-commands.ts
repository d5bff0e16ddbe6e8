import cliProgress from "cli-progress";
import type { Logger } from "@lowrank/core";
import type { PullProgress } from "@lowrank/hub";
import type { CliContext } from "../cli-context.js";
import { listFlag, numberFlag } from "./parse-flags.js";

/** A byte count for people: "812 B", "64.4 KB", "3.0 MB", "1.2 GB" (powers of 1024). */
export function formatBytes(bytes: number): string {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** What `lowrank pull` reports while it pulls: handlers for pullRepo, and `stop` for the end (or a failure). */
export interface PullReporter {
  onProgress(event: PullProgress): void;
  onFile(event: { path: string; size: number; cached: boolean }): void;
  stop(): void;
}

/**
 * Progress of `lowrank pull`: when `stream` is a terminal, a cli-progress bar of the bytes of the
 * file being downloaded (erased when the file is done); in any case one line per file through the
 * logger once it is in the cache ("pulled  name (N bytes)" or "cached  name (N bytes)").
 */
export function pullReporter(logger: Logger, stream: NodeJS.WritableStream & { isTTY?: boolean } = process.stderr): PullReporter {
  const bar = stream.isTTY
    ? new cliProgress.SingleBar(
        { format: "{file} |{bar}| {percentage}% | {done} / {size}", hideCursor: true, clearOnComplete: true, stream },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  let current: string | undefined;
  const stop = () => {
    if (current !== undefined) bar?.stop();
    current = undefined;
  };
  return {
    onProgress: ({ path, bytes, total }) => {
      if (!bar || total === 0) return;
      if (path !== current) {
        stop();
        current = path;
        bar.start(total, bytes, { file: path, done: formatBytes(bytes), size: formatBytes(total) });
      } else {
        bar.update(bytes, { done: formatBytes(bytes) });
      }
    },
    onFile: ({ path, size, cached }) => {
      stop();
      logger.info(`${cached ? "cached " : "pulled "} ${path} (${size.toLocaleString("en-US")} bytes)`);
    },
    stop,
  };
}

/** `lowrank pull`: a repo into the Python-compatible cache; prints the snapshot folder. Shows a byte progress bar on a terminal. */
export async function pullCommand(ctx: CliContext, repo: string, options: { revision?: string; include?: string; json?: boolean }): Promise<void> {
  const config = await ctx.hub();
  const reporter = pullReporter(ctx.logger);
  let result;
  try {
    result = await (await ctx.hubClient()).pullRepo({
      repo,
      revision: options.revision,
      include: listFlag(options.include),
      config,
      onProgress: reporter.onProgress,
      onFile: reporter.onFile,
    });
  } finally {
    reporter.stop();
  }
  if (options.json) ctx.out(JSON.stringify(result, null, 2));
  else ctx.out(result.snapshotDir);
}

/** `lowrank push`: an adapter folder to a Hub repo with a generated model card; prints the commit URL. */
export async function pushCommand(
  ctx: CliContext,
  dir: string,
  options: { repo: string; private?: boolean; revision?: string; message?: string },
): Promise<void> {
  const result = await (await ctx.hubClient()).pushAdapter({
    dir,
    repo: options.repo,
    private: options.private,
    revision: options.revision,
    message: options.message,
    config: await ctx.hub(),
    logger: ctx.logger,
  });
  if (result.created) ctx.logger.info(`created ${options.private ? "private " : ""}repo ${options.repo}`);
  ctx.out(result.commitUrl);
}

/**
 * `lowrank hub serve`: the self-hosted Hub-compatible registry, until SIGINT/SIGTERM. The server
 * (@lowrank/hub-server) is loaded here, on first use, so `pull` and `push` never load it.
 */
export async function hubServeCommand(
  ctx: CliContext,
  options: { dir: string; port?: string; host?: string; token?: string[]; maxBodyBytes?: string; maxFileBytes?: string },
): Promise<void> {
  const { startHubServer } = await import("@lowrank/hub-server");
  const server = await startHubServer({
    dir: options.dir,
    port: numberFlag("--port", options.port, { integer: true, min: 0, max: 65535 }) ?? 8080,
    host: options.host ?? "127.0.0.1",
    tokens: options.token,
    logger: ctx.logger,
    maxBodyBytes: numberFlag("--max-body-bytes", options.maxBodyBytes, { integer: true, min: 1 }),
    maxLfsObjectBytes: numberFlag("--max-file-bytes", options.maxFileBytes, { integer: true, min: 1 }),
  });
  ctx.out(`lowrank hub serving ${options.dir} at ${server.url} (set HF_ENDPOINT=${server.url})`);
  await new Promise<void>((resolve) => {
    const stop = () => void server.close().then(resolve);
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
}
