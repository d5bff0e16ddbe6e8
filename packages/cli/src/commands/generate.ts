import { LowrankError, readAdapter } from "@lowrank/core";
import type { CliContext } from "../cli-context.js";
import { listFlag, numberFlag } from "./parse-flags.js";

export interface GenerateOptions {
  model: string;
  adapter?: string;
  merge?: boolean;
  prompt?: string;
  promptIds?: string;
  maxNewTokens?: string;
  temperature?: string;
  topK?: string;
  topP?: string;
  seed?: string;
  cache?: boolean;
  backend?: string;
  json?: boolean;
}

/** `lowrank generate`: continues a prompt with a causal LM (greedy, or temperature/top-k/top-p sampling). */
export async function generateCommand(ctx: CliContext, o: GenerateOptions): Promise<void> {
  if ((o.prompt === undefined) === (o.promptIds === undefined)) throw new LowrankError("USAGE", "give exactly one of --prompt <text> and --prompt-ids <ids>");
  const promptIds = listFlag(o.promptIds)?.map((id) => numberFlag("--prompt-ids", id, { integer: true, min: 0 })!);
  const adapter = o.adapter ? await readAdapter(await ctx.local(o.adapter), { logger: ctx.logger }) : undefined;
  const model = await ctx.local(o.model);
  const { backend } = await (await ctx.registry()).resolveFor("generate", o.backend, model);
  if (!backend.generate) throw new LowrankError("USAGE", `backend "${backend.name}" cannot generate`);
  const result = await backend.generate({
    model,
    adapter,
    merge: o.merge,
    prompt: o.prompt,
    promptIds,
    maxNewTokens: numberFlag("--max-new-tokens", o.maxNewTokens, { integer: true, min: 1 }) ?? 32,
    temperature: numberFlag("--temperature", o.temperature, { min: 0 }),
    topK: numberFlag("--top-k", o.topK, { integer: true, min: 1 }),
    topP: numberFlag("--top-p", o.topP, { min: 0, max: 1 }),
    seed: numberFlag("--seed", o.seed, { integer: true, min: 0 }),
    useCache: o.cache !== false,
  });
  if (o.json) ctx.out(JSON.stringify({ ids: result.ids, ...(result.text !== undefined ? { text: result.text } : {}), backend: backend.name }));
  else ctx.out(result.text ?? result.ids.join(" "));
}
