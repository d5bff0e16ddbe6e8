import { pullRepo, pushAdapter, startHubServer } from "@lowrank/hub";
import type { CliContext } from "../cli-context.js";
import { listFlag, numberFlag } from "./parse-flags.js";

/** `lowrank pull`: a repo into the Python-compatible cache; prints the snapshot folder. */
export async function pullCommand(ctx: CliContext, repo: string, options: { revision?: string; include?: string; json?: boolean }): Promise<void> {
  const config = await ctx.hub();
  const result = await pullRepo({
    repo, revision: options.revision, include: listFlag(options.include), config,
    onFile: ({ path, size, cached }) => ctx.logger.info(`${cached ? "cached " : "pulled "} ${path} (${size.toLocaleString("en-US")} bytes)`),
  });
  if (options.json) ctx.out(JSON.stringify(result, null, 2));
  else ctx.out(result.snapshotDir);
}

/** `lowrank push`: an adapter folder to a Hub repo with a generated model card; prints the commit URL. */
export async function pushCommand(ctx: CliContext, dir: string, options: { repo: string; private?: boolean; revision?: string; message?: string }): Promise<void> {
  const result = await pushAdapter({ dir, repo: options.repo, private: options.private, revision: options.revision, message: options.message, config: await ctx.hub(), logger: ctx.logger });
  if (result.created) ctx.logger.info(`created ${options.private ? "private " : ""}repo ${options.repo}`);
  ctx.out(result.commitUrl);
}

/** `lowrank hub serve`: the self-hosted Hub-compatible registry, until SIGINT/SIGTERM. */
export async function hubServeCommand(ctx: CliContext, options: { dir: string; port?: string; host?: string; token?: string[]; maxBodyBytes?: string; maxFileBytes?: string }): Promise<void> {
  const server = await startHubServer({
    dir: options.dir, port: numberFlag("--port", options.port, { integer: true, min: 0, max: 65535 }) ?? 8080,
    host: options.host ?? "127.0.0.1", tokens: options.token, logger: ctx.logger,
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
