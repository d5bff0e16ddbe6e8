import { combineAdapters, COMBINATIONS, LowrankError, readAdapter, writeAdapter, type CombinationType } from "@lowrank/core";
import type { CliContext } from "../cli-context.js";
import { choiceFlag, numberFlag } from "./parse-flags.js";

export interface CombineCommandOptions {
  adapter: string[];
  out: string;
  weights?: string;
  combination?: string;
  svdRank?: string;
  svdClamp?: string;
  density?: string;
  majoritySignMethod?: string;
  seed?: string;
}

/**
 * `lowrank merge --adapter a --adapter b [--weights 0.7,0.3] [--combination svd] --out dir`: PEFT's
 * add_weighted_adapter, written as a new adapter folder.
 */
export async function combineCommand(ctx: CliContext, options: CombineCommandOptions): Promise<void> {
  const combination: CombinationType = choiceFlag("--combination", options.combination, COMBINATIONS) ?? "svd";
  const weights = options.weights === undefined ? options.adapter.map(() => 1) : options.weights.split(",").map((w) => numberFlag("--weights", w)!);
  if (weights.length !== options.adapter.length)
    throw new LowrankError("USAGE", `--weights has ${weights.length} values for ${options.adapter.length} --adapter folders`);
  const inputs = [];
  for (const [i, dir] of options.adapter.entries()) {
    inputs.push({ adapter: await readAdapter(await ctx.local(dir), { logger: ctx.logger }), weight: weights[i]!, name: `adapter ${dir}` });
  }
  const combined = combineAdapters(inputs, {
    combination,
    svdRank: numberFlag("--svd-rank", options.svdRank, { integer: true, min: 1 }),
    svdClamp: numberFlag("--svd-clamp", options.svdClamp, { min: 0, max: 1 }),
    density: numberFlag("--density", options.density, { min: 0, max: 1 }),
    majoritySignMethod: choiceFlag("--majority-sign-method", options.majoritySignMethod, ["total", "frequency"] as const),
    seed: numberFlag("--seed", options.seed, { integer: true, min: 0 }),
    logger: ctx.logger,
  });
  const provenance = {
    combination,
    adapters: options.adapter,
    weights,
    svd_rank: options.svdRank,
    svd_clamp: options.svdClamp,
    density: options.density,
    majority_sign_method: options.majoritySignMethod,
  };
  await writeAdapter(options.out, combined, { "combination.json": `${JSON.stringify(provenance, null, 2)}\n` });
  ctx.out(
    `combined ${options.adapter.length} adapter(s) with ${combination} into ${options.out} (r=${combined.config.r}, ` +
      `lora_alpha=${combined.config.lora_alpha}, ${combined.tensors.size} tensors)`,
  );
}
