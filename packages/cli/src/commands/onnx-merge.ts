import { readAdapter } from "@lowrank/core";
import type { CliContext } from "../cli-context.js";

/** `lowrank onnx merge`: the adapter's ΔW added to the ONNX model's weights; the graph is otherwise unchanged. */
export async function onnxMergeCommand(ctx: CliContext, options: { model: string; adapter: string; out: string; safe?: boolean }): Promise<void> {
  const { mergeOnnxFile } = await import("@lowrank/backend-onnx");
  const adapter = await readAdapter(await ctx.local(options.adapter), { logger: ctx.logger });
  const started = performance.now();
  const merged = await mergeOnnxFile({ model: options.model, adapter, out: options.out, safe: options.safe, logger: ctx.logger });
  ctx.out(
    `merged ${merged.mergedModules.length} ` +
      `module(s)${merged.replacedTensors.length ? ` and replaced ${merged.replacedTensors.length} tensor(s)` : ""} into ${options.out} ` +
      `(${(merged.bytes / 1e6).toFixed(1)} MB, ${((performance.now() - started) / 1000).toFixed(2)} s)`,
  );
}

/**
 * `lowrank onnx export`: a checkpoint as an ONNX model — decoders with a key/value cache in
 * Optimum's layout, encoders with their heads — optionally with an adapter merged in.
 */
export async function onnxExportCommand(ctx: CliContext, options: { model: string; adapter?: string; out: string }): Promise<void> {
  const { buildCheckpointGraph, mergeIntoOnnxModel, writeOnnx } = await import("@lowrank/backend-onnx");
  const modelDir = await ctx.local(options.model);
  let model = await buildCheckpointGraph(modelDir);
  if (options.adapter)
    model = mergeIntoOnnxModel(model, await readAdapter(await ctx.local(options.adapter), { logger: ctx.logger }), { modelDir, logger: ctx.logger }).model;
  const written = await writeOnnx(options.out, model, { sourceDir: modelDir });
  ctx.out(`exported ${options.model}${options.adapter ? ` with ${options.adapter} merged` : ""} to ${options.out} (${(written.bytes / 1e6).toFixed(1)} MB)`);
}
