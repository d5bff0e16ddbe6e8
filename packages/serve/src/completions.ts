import { randomUUID } from "node:crypto";
import { ChatTemplate } from "@lowrank/core/internal";
import type { GeneratedToken, ServeEngine } from "./serve-engine.js";
import { badRequest } from "./serve-error.js";
import type { ChatRequest, CompletionRequest } from "./openai-requests.js";
import { TextStream } from "./text-stream.js";

/** The limits a server puts on each request. */
export interface RequestLimits {
  /** Largest max_tokens accepted. */
  maxTokens: number;
  /** The model's context: prompt + max_tokens may not exceed it. */
  contextLength: number;
}

/** One choice as it ends: its text and tokens, log-probabilities when asked, why it stopped. */
interface ChoiceResult {
  index: number;
  text: string;
  tokens: GeneratedToken[];
  finishReason: "stop" | "length";
  promptTokens: number;
}

/** What a request generates: each prompt × n, and the sampling shared by all. */
interface Job {
  model: string;
  adapter: string | null;
  prompts: number[][];
  n: number;
  maxTokens: number;
  temperature: number;
  topP: number;
  seed?: number;
  stops: string[];
  logprobs?: number;
}

/** Streams a choice's deltas (text and the tokens behind it) and its end; absent: collected. */
export type DeltaSink = (index: number, delta: { text: string; tokens: GeneratedToken[]; finishReason?: "stop" | "length" }) => void;

/**
 * Runs every choice of a job at once in the engine (they share its batch), each ending at its stop
 * string (cancelled there), EOS or max_tokens; `signal` cancels all (a client gone).
 */
export async function runJob(engine: ServeEngine, job: Job, signal: AbortSignal, sink?: DeltaSink): Promise<ChoiceResult[]> {
  const choices = job.prompts.flatMap((prompt, p) => Array.from({ length: job.n }, (_, i) => ({ prompt, index: p * job.n + i })));
  return Promise.all(
    choices.map(async ({ prompt, index }) => {
      const controller = new AbortController();
      const abort = () => controller.abort();
      signal.addEventListener("abort", abort);
      try {
        const generation = await engine.generate({
          adapter: job.adapter,
          promptIds: prompt,
          maxTokens: job.maxTokens,
          temperature: job.temperature,
          topP: job.topP,
          // n choices of one prompt: seed, seed + 1, … (the same seed would give the same sample).
          ...(job.seed === undefined ? {} : { seed: job.seed + index }),
          ...(job.logprobs === undefined ? {} : { logprobs: job.logprobs }),
          signal: controller.signal,
        });
        const text = new TextStream(engine.tokenizer, job.stops);
        const tokens: GeneratedToken[] = [];
        let out = "";
        let pending: GeneratedToken[] = [];
        for await (const t of generation.tokens) {
          if (text.stopped) continue;
          tokens.push(t);
          pending.push(t);
          const delta = text.push(t.token);
          out += delta;
          if (text.stopped) controller.abort();
          if (sink && (delta || !engine.tokenizer)) {
            sink(index, { text: delta, tokens: pending });
            pending = [];
          }
        }
        const done = await generation.done;
        const rest = text.finish();
        out += rest;
        const finishReason = text.stopped ? "stop" : done.finishReason === "cancelled" ? "stop" : done.finishReason;
        sink?.(index, { text: rest, tokens: pending, finishReason });
        return { index, text: out, tokens, finishReason, promptTokens: prompt.length };
      } finally {
        signal.removeEventListener("abort", abort);
      }
    }),
  );
}

/** The job of /v1/completions: prompts as text (the model's tokenizer) or token ids. @throws ServeError 400 for bad fields. */
export function completionJob(engine: ServeEngine, request: CompletionRequest, limits: RequestLimits): Job {
  const raw = request.prompt;
  const prompts: number[][] =
    typeof raw === "string"
      ? [encode(engine, raw)]
      : typeof raw[0] === "string"
        ? (raw as string[]).map((p) => encode(engine, p))
        : typeof raw[0] === "number"
          ? [raw as number[]]
          : (raw as number[][]);
  return jobOf(engine, request, prompts, request.max_tokens ?? 16, request.logprobs ?? undefined, limits);
}

/** The job of /v1/chat/completions: the messages through the model's chat template. @throws ServeError 400 without a template. */
export function chatJob(engine: ServeEngine, request: ChatRequest, limits: RequestLimits): Job {
  const tokenizer = engine.tokenizer;
  if (!tokenizer?.chatTemplate)
    throw badRequest(`${engine.modelName} has no chat template (chat_template in tokenizer_config.json, or chat_template.jinja); use /v1/completions`);
  const template = new ChatTemplate(tokenizer.chatTemplate, tokenizer.specialTokens ?? {}, `${engine.modelDir} chat_template`);
  const messages = request.messages.map((m) => ({
    role: m.role,
    content: typeof m.content === "string" ? m.content : (m.content ?? []).map((part) => part.text).join(""),
  }));
  let text: string;
  try {
    text = template.render(messages, { addGenerationPrompt: true, where: "messages" });
  } catch (error) {
    throw badRequest((error as Error).message);
  }
  const top = request.logprobs ? (request.top_logprobs ?? 0) : undefined;
  const maxTokens = request.max_completion_tokens ?? request.max_tokens ?? limits.contextLength;
  return jobOf(engine, request, [encode(engine, text)], maxTokens, top, limits, request.max_completion_tokens == null && request.max_tokens == null);
}

function jobOf(
  engine: ServeEngine,
  request: CompletionRequest | ChatRequest,
  prompts: number[][],
  maxTokens: number,
  logprobs: number | undefined,
  limits: RequestLimits,
  fitToContext = false,
): Job {
  const adapter = request.model === engine.modelName ? null : request.model;
  const vocab = engine.vocabSize;
  for (const prompt of prompts) {
    if (prompt.length === 0) throw badRequest("`prompt`: empty");
    const bad = prompt.find((id) => id >= vocab);
    if (bad !== undefined) throw badRequest(`\`prompt\`: token id ${bad} is outside the vocabulary (${vocab})`);
  }
  const longest = Math.max(...prompts.map((p) => p.length));
  // Chat without a limit: as long as the context allows.
  const tokens = fitToContext ? Math.min(limits.maxTokens, limits.contextLength - longest) : maxTokens;
  if (longest >= limits.contextLength)
    throw badRequest(`This model's maximum context length is ${limits.contextLength} tokens; the prompt has ${longest}.`, "context_length_exceeded");
  if (tokens > limits.maxTokens) throw badRequest(`\`max_tokens\`: ${tokens} is more than this server allows (${limits.maxTokens})`);
  if (longest + tokens > limits.contextLength)
    throw badRequest(
      `This model's maximum context length is ${limits.contextLength} tokens. However, you requested ${longest + tokens} tokens ` +
        `(${longest} in the prompt, ${tokens} for the completion).`,
      "context_length_exceeded",
    );
  const stop = request.stop ?? [];
  return {
    model: request.model,
    adapter,
    prompts,
    n: request.n ?? 1,
    maxTokens: tokens,
    temperature: request.temperature ?? 1,
    topP: request.top_p ?? 1,
    ...(request.seed == null ? {} : { seed: request.seed }),
    stops: (typeof stop === "string" ? [stop] : stop).filter((s) => s.length > 0),
    ...(logprobs === undefined ? {} : { logprobs }),
  };
}

function encode(engine: ServeEngine, text: string): number[] {
  if (!engine.tokenizer) throw badRequest(`${engine.modelName} has no tokenizer.json: give the prompt as token ids`);
  return engine.tokenizer.encode(text);
}

const now = () => Math.floor(Date.now() / 1000);
const tokenText = (engine: ServeEngine, token: number) => engine.tokenizer?.decode([token]) ?? "";

/** The legacy completions logprobs object of a choice's tokens. */
function completionLogprobs(engine: ServeEngine, tokens: GeneratedToken[], offset = 0) {
  const texts = tokens.map((t) => tokenText(engine, t.token));
  const offsets = texts.map((_, i) => offset + texts.slice(0, i).join("").length);
  return {
    tokens: texts,
    token_logprobs: tokens.map((t) => t.logprob!.logprob),
    top_logprobs: tokens.map((t) => Object.fromEntries(t.logprob!.top.map((a) => [tokenText(engine, a.token), a.logprob]))),
    text_offset: offsets,
  };
}

/** The chat logprobs object of a choice's tokens. */
function chatLogprobs(engine: ServeEngine, tokens: GeneratedToken[]) {
  const entry = (token: number, logprob: number) => {
    const text = tokenText(engine, token);
    return { token: text, logprob, bytes: [...Buffer.from(text, "utf8")] };
  };
  return {
    content: tokens.map((t) => ({ ...entry(t.token, t.logprob!.logprob), top_logprobs: t.logprob!.top.map((a) => entry(a.token, a.logprob)) })),
  };
}

function usage(job: Job, results: ChoiceResult[]) {
  const prompt = job.prompts.reduce((n, p) => n + p.length, 0);
  const completion = results.reduce((n, r) => n + r.tokens.length, 0);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

/** The /v1/completions response body. */
export function completionResponse(engine: ServeEngine, job: Job, results: ChoiceResult[]) {
  return {
    id: `cmpl-${randomUUID()}`,
    object: "text_completion",
    created: now(),
    model: job.model,
    choices: results.map((r) => ({
      index: r.index,
      text: r.text,
      logprobs: job.logprobs === undefined ? null : completionLogprobs(engine, r.tokens),
      finish_reason: r.finishReason,
      token_ids: r.tokens.map((t) => t.token),
    })),
    usage: usage(job, results),
  };
}

/** The /v1/chat/completions response body. */
export function chatResponse(engine: ServeEngine, job: Job, results: ChoiceResult[]) {
  return {
    id: `chatcmpl-${randomUUID()}`,
    object: "chat.completion",
    created: now(),
    model: job.model,
    choices: results.map((r) => ({
      index: r.index,
      message: { role: "assistant", content: r.text },
      logprobs: job.logprobs === undefined ? null : chatLogprobs(engine, r.tokens),
      finish_reason: r.finishReason,
      token_ids: r.tokens.map((t) => t.token),
    })),
    usage: usage(job, results),
  };
}

/** Streams a job as server-sent events: `send(chunk)` for each, usage last when asked; the caller writes `data: [DONE]`. */
export async function streamJob(
  engine: ServeEngine,
  job: Job,
  chat: boolean,
  includeUsage: boolean,
  signal: AbortSignal,
  send: (chunk: unknown) => void,
): Promise<void> {
  const id = `${chat ? "chatcmpl" : "cmpl"}-${randomUUID()}`;
  const created = now();
  const base = { id, object: chat ? "chat.completion.chunk" : "text_completion", created, model: job.model };
  const started = new Set<number>();
  const offsets = new Map<number, number>();
  const results = await runJob(engine, job, signal, (index, delta) => {
    if (signal.aborted) return;
    const logprobs =
      job.logprobs === undefined || delta.tokens.length === 0
        ? null
        : chat
          ? chatLogprobs(engine, delta.tokens)
          : completionLogprobs(engine, delta.tokens, offsets.get(index) ?? 0);
    offsets.set(index, (offsets.get(index) ?? 0) + delta.text.length);
    const finish = delta.finishReason ?? null;
    if (chat) {
      const role = started.has(index) ? {} : { role: "assistant" };
      started.add(index);
      send({ ...base, choices: [{ index, delta: { ...role, content: delta.text }, logprobs, finish_reason: finish }] });
    } else {
      send({ ...base, choices: [{ index, text: delta.text, logprobs, finish_reason: finish, token_ids: delta.tokens.map((t) => t.token) }] });
    }
  });
  if (includeUsage && !signal.aborted) send({ ...base, choices: [], usage: usage(job, results) });
}
