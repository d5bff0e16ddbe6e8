import { existsSync } from "node:fs";
import path from "node:path";
import { LowrankError } from "@lowrank/core";
import type { CliContext } from "../cli-context.js";
import { LOWRANK_VERSION } from "../version.js";
import { loadBenchSuite } from "./load-bench-suite.js";

interface BenchOptions {
  quick?: boolean;
  json?: string;
  report?: string;
  model?: string;
  data?: string;
  worker?: string;
}

/** The repository's embedded base and E2E data, looked for above the working folder and the CLI. */
function findEmbedded(relative: string): string | undefined {
  const starts = [process.cwd(), path.dirname(path.resolve(process.argv[1] ?? "."))];
  for (const start of starts) {
    for (let dir = start; ; dir = path.dirname(dir)) {
      if (existsSync(path.join(dir, relative))) return path.join(dir, relative);
      if (path.dirname(dir) === dir) break;
    }
  }
  return undefined;
}

/**
 * `lowrank bench`: the suite lives in the private @lowrank/bench package, loaded here on first use
 * (present in the repository, absent from a published install). The suite runs each measurement
 * in its own worker process (the package's dist/worker.js); `--worker <job>` runs one here too.
 */
export async function benchCommand(ctx: CliContext, options: BenchOptions): Promise<void> {
  const { runBenchSuite, runWorkerJob, writeBenchReport, writeJsonResults } = await loadBenchSuite();
  if (options.worker) {
    ctx.out(JSON.stringify(await runWorkerJob(JSON.parse(options.worker))));
    return;
  }
  const modelDir = options.model ?? findEmbedded(path.join("models", "gpt2-mini"));
  const e2eFile = options.data ?? findEmbedded(path.join("data", "e2e", "valid.txt"));
  if (!modelDir || !existsSync(path.join(modelDir, "config.json")))
    throw new LowrankError("USAGE", `bench: cannot find the embedded model ${options.model ?? "models/gpt2-mini"}; pass --model <gpt2-folder>`);
  if (!e2eFile || !existsSync(e2eFile))
    throw new LowrankError("USAGE", `bench: cannot find the E2E data ${options.data ?? "data/e2e/valid.txt"}; pass --data <e2e.txt>`);
  const results = await runBenchSuite({
    quick: Boolean(options.quick),
    modelDir,
    e2eFile,
    lowrankVersion: LOWRANK_VERSION,
    log: (line) => ctx.logger.info(line),
  });
  ctx.out(`lowrank bench${options.quick ? " --quick" : ""}: ${results.seconds.toFixed(0)} s`);
  for (const t of results.targets)
    ctx.out(
      `  ${t.ratio.padEnd(32)} ${t.value === null ? "not measured" : t.value.toFixed(3).padStart(8)}  target ${t.target.padEnd(7)} ${t.met ? "met" : "MISSED"}`,
    );
  if (options.json) {
    await writeJsonResults(options.json, results);
    ctx.out(`wrote ${options.json}`);
  }
  if (options.report) {
    await writeBenchReport(options.report, results);
    ctx.out(`wrote ${options.report}`);
  }
}
