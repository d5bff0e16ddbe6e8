import path from "node:path";
import { LowrankError, mergeCheckpoint, readAdapter } from "@lowrank/core";
import type { CliContext } from "../cli-context.js";

export interface MergeCommandOptions {
  model: string;
  adapter: string;
  out: string;
  safe?: boolean;
  backend?: string;
}

/** `lowrank merge`: the adapter merged into the base, written as a Hugging Face checkpoint. */
export async function mergeCommand(ctx: CliContext, options: MergeCommandOptions): Promise<void> {
  if (path.resolve(options.out) === path.resolve(options.model)) {
    throw new LowrankError("USAGE", "--out must differ from --model (the base checkpoint is never overwritten)");
  }
  const adapter = await readAdapter(await ctx.local(options.adapter), { logger: ctx.logger });
  const base = await ctx.local(options.model);
  const started = performance.now();
  let result;
  if (options.backend) {
    const { backend } = await (await ctx.registry()).resolveFor("merge", options.backend);
    result = await backend.merge!({ baseDir: base, adapter, outDir: options.out, safe: options.safe });
  } else {
    const showProgress = process.stderr.isTTY;
    try {
      result = await mergeCheckpoint({
        baseDir: base,
        adapter,
        outDir: options.out,
        safe: options.safe,
        logger: ctx.logger,
        onTensor: showProgress ? (done, total) => process.stderr.write(`\rmerging ${done}/${total} tensors`) : undefined,
      });
    } finally {
      if (showProgress) process.stderr.write("\n");
    }
  }
  const seconds = (performance.now() - started) / 1000;
  ctx.out(
    `merged ${result.mergedModules.length} module(s)` +
      (result.replacedTensors.length ? ` and replaced ${result.replacedTensors.length} tensor(s)` : "") +
      ` into ${options.out} (${result.tensorCount} tensors, ${(result.bytesWritten / 1e6).toFixed(1)} MB, ${seconds.toFixed(2)} s)`,
  );
}
