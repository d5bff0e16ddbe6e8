import { Checkpoint, describeModel, importLoralib, LowrankError, writeAdapter } from "@lowrank/core";
import { readTorchStateDict } from "@lowrank/core/internal";
import type { CliContext } from "../cli-context.js";
import { listFlag, numberFlag } from "./parse-flags.js";

export interface ImportLoralibOptions {
  model: string;
  rank: string;
  alpha: string;
  targetModules: string;
  enableLora?: string;
  fanInFanOut?: boolean;
  out: string;
}

function parseFlags(text: string): boolean[] {
  return listFlag(text)!.map((t) => {
    const v = t.toLowerCase();
    if (v === "1" || v === "true") return true;
    if (v === "0" || v === "false") return false;
    throw new LowrankError("USAGE", `--enable-lora must be a comma-separated list of 1/0 or true/false, got ${JSON.stringify(text)}`);
  });
}

/** `lowrank import loralib`: a microsoft/LoRA checkpoint turned into a PEFT adapter folder. */
export async function importLoralibCommand(ctx: CliContext, file: string, options: ImportLoralibOptions): Promise<void> {
  const stateDict = await readTorchStateDict(file);
  const checkpoint = await Checkpoint.open(await ctx.local(options.model));
  let model;
  try {
    model = describeModel(checkpoint.config, checkpoint.tensorInfo());
  } finally {
    await checkpoint.close();
  }
  const adapter = importLoralib({
    stateDict,
    model,
    rank: numberFlag("--rank", options.rank)!,
    alpha: numberFlag("--alpha", options.alpha)!,
    targetModules: listFlag(options.targetModules)!,
    enableLora: options.enableLora === undefined ? undefined : parseFlags(options.enableLora),
    fanInFanOut: options.fanInFanOut,
    baseModelName: options.model,
    logger: ctx.logger,
  });
  await writeAdapter(options.out, adapter);
  ctx.out(`imported ${adapter.tensors.size / 2} LoRA module(s) (r=${adapter.config.r}, lora_alpha=${adapter.config.lora_alpha}) into ${options.out}`);
}
