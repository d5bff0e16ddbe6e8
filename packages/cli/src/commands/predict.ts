import { float32Tensor, LowrankError, readAdapter, writeSafetensors, type Tensor } from "@lowrank/core";
import type { CliContext } from "../cli-context.js";
import { readIdRows } from "./read-json-input.js";

export interface PredictOptions {
  model: string;
  adapter?: string;
  merge?: boolean;
  backend?: string;
  inputIds: string;
  attentionMask?: string;
  out: string;
}

/** `lowrank predict`: logits (and encoders' last_hidden_state) for the given ids, written as safetensors. */
export async function predictCommand(ctx: CliContext, options: PredictOptions): Promise<void> {
  if (options.merge && !options.adapter) throw new LowrankError("USAGE", "--merge needs --adapter");
  const inputIds = await readIdRows(options.inputIds, "--input-ids");
  const attentionMask = options.attentionMask ? await readIdRows(options.attentionMask, "--attention-mask") : undefined;
  const adapter = options.adapter ? await readAdapter(await ctx.local(options.adapter), { logger: ctx.logger }) : undefined;
  const model = await ctx.local(options.model);
  const { backend } = await (await ctx.registry()).resolveFor("infer", options.backend, model);
  const result = await backend.predict!({ model, adapter, merge: options.merge, inputIds, attentionMask });
  const tensors = new Map<string, Tensor>([["logits", float32Tensor(result.logits.data, result.logits.shape)]]);
  if (result.lastHiddenState) tensors.set("last_hidden_state", float32Tensor(result.lastHiddenState.data, result.lastHiddenState.shape));
  await writeSafetensors(options.out, tensors, { format: "pt" });
  ctx.out(`wrote ${[...tensors].map(([k, t]) => `${k} [${t.shape.join(", ")}]`).join(" and ")} to ${options.out} (backend ${backend.name})`);
}
