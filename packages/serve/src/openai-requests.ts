import { z } from "zod";
import { badRequest } from "./serve-error.js";

/** The sampling and length fields completions and chat completions share (OpenAI's names and defaults). */
const sampling = {
  model: z.string().min(1),
  max_tokens: z.number().int().min(1).nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  seed: z.number().int().nullish(),
  stop: z.union([z.string(), z.array(z.string()).max(4)]).nullish(),
  n: z.number().int().min(1).max(16).nullish(),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().nullish() }).nullish(),
};

const tokenIds = z.array(z.number().int().min(0)).min(1);

export const completionRequest = z.object({
  ...sampling,
  // A string, strings, token ids, or lists of token ids.
  prompt: z.union([z.string(), z.array(z.string()).min(1), tokenIds, z.array(tokenIds).min(1)]),
  logprobs: z.number().int().min(0).max(20).nullish(),
  echo: z.literal(false).nullish(),
});

const textPart = z.object({ type: z.literal("text"), text: z.string() });
export const chatRequest = z.object({
  ...sampling,
  max_completion_tokens: z.number().int().min(1).nullish(),
  messages: z.array(z.object({ role: z.string().min(1), content: z.union([z.string(), z.array(textPart)]).nullish() })).min(1),
  logprobs: z.boolean().nullish(),
  top_logprobs: z.number().int().min(0).max(20).nullish(),
});

export const loadAdapterRequest = z.object({ lora_name: z.string().min(1), lora_path: z.string().min(1) });
export const unloadAdapterRequest = z.object({ lora_name: z.string().min(1) });

export type CompletionRequest = z.infer<typeof completionRequest>;
export type ChatRequest = z.infer<typeof chatRequest>;

/**
 * A request body checked against its schema.
 * @throws ServeError 400 naming the first bad field (OpenAI's invalid_request_error).
 */
export function parseRequest<T extends z.ZodType>(schema: T, body: unknown): z.infer<T> {
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const field = issue.path.join(".") || "body";
  throw badRequest(`\`${field}\`: ${issue.message}`, "invalid_value");
}
