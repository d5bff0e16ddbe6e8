import { readAdapter } from "@lowrank/core";
import { mergeOnnxFile } from "@lowrank/backend-onnx";
import type { CliContext } from "../cli-context.js";

/** `lowrank onnx merge`: the adapter's ΔW added to the ONNX model's weights; the graph is otherwise unchanged. */
export async function onnxMergeCommand(ctx: CliContext, options: { model: string; adapter: string; out: string; safe?: boolean }): Promise<void> {
  const adapter = await readAdapter(options.adapter, { logger: ctx.logger });
  const started = performance.now();
  const merged = await mergeOnnxFile({ model: options.model, adapter, out: options.out, safe: options.safe, logger: ctx.logger });
  ctx.out(`merged ${merged.mergedModules.length} module(s)${merged.replacedTensors.length ? ` and replaced ${merged.replacedTensors.length} tensor(s)` : ""} into ${options.out} (${(merged.bytes / 1e6).toFixed(1)} MB, ${((performance.now() - started) / 1000).toFixed(2)} s)`);
}
