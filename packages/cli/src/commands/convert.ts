import path from "node:path";
import { ADAPTER_FORMATS, collectLoraModules, conversionBase, LowrankError, readAdapterAs, writeAdapterAs } from "@lowrank/core";
import type { CliContext } from "../cli-context.js";
import { choiceFlag } from "./parse-flags.js";

export interface ConvertOptions {
  to: string;
  adapter: string;
  base: string;
  out: string;
  outtype?: string;
  inputNames?: string;
  json?: boolean;
}

/**
 * `lowrank convert`: an adapter from one format to another (the input's format detected), against
 * its base model (names, architecture, head counts). GGUF data as f32 (default), f16, bf16 or q8_0;
 * .onnx_adapter inputs named for Olive's models (default) or backend-onnx's slots.
 */
export async function convertCommand(ctx: CliContext, o: ConvertOptions): Promise<void> {
  const to = choiceFlag("--to", o.to, ADAPTER_FORMATS)!;
  const outtype = choiceFlag("--outtype", o.outtype, ["f32", "f16", "bf16", "q8_0"] as const);
  if (outtype !== undefined && to !== "gguf") throw new LowrankError("USAGE", "--outtype applies to --to gguf only");
  const onnxNaming = choiceFlag("--input-names", o.inputNames, ["olive", "lowrank"] as const);
  if (onnxNaming !== undefined && to !== "onnx-adapter") throw new LowrankError("USAGE", "--input-names applies to --to onnx-adapter only");
  const base = await conversionBase(await ctx.local(o.base));
  const { format, adapter } = await readAdapterAs(await ctx.local(o.adapter), base);
  const ggufType = outtype === undefined ? undefined : ({ f32: "F32", f16: "F16", bf16: "BF16", q8_0: "Q8_0" } as const)[outtype];
  await writeAdapterAs(adapter, to, o.out, base, { ggufType, onnxNaming, name: path.basename(path.resolve(o.adapter)) });
  const summary = { from: format, to, out: o.out, modules: collectLoraModules(adapter).modules.size };
  ctx.out(o.json ? JSON.stringify(summary) : `converted ${o.adapter} (${format}) to ${to}: ${o.out}`);
}
