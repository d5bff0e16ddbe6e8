import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import type * as ort from "onnxruntime-node";
import { buildCheckpointGraph, encodeModel, OnnxLoraSession, type ExecutionProvider } from "@lowrank/backend-onnx";
import { emptyPast, kvLayoutOf, kvStepFeeds, presentAsPast, type KvLayout } from "@lowrank/backend-onnx/internal";
import { Checkpoint, describeModel, loadTokenizer, LowrankError, readStopTokens, silentLogger, type Logger, type TextTokenizer } from "@lowrank/core";
import { TokenDecoder } from "@lowrank/core/internal";
import { AdapterPool, type AdapterSource } from "./adapter-pool.js";
import { KvBatch } from "./kv-batch.js";
import { tokenLogprobs, type TokenLogprob } from "./logprobs.js";
import { overloaded } from "./serve-error.js";

/** One sequence to generate: its prompt, adapter (null: the base model), sampling and limits. */
export interface GenerationRequest {
  adapter: string | null;
  promptIds: readonly number[];
  maxTokens: number;
  temperature?: number;
  topP?: number;
  seed?: number;
  /** Also report each token's log-probability and the `logprobs` most likely alternatives. */
  logprobs?: number;
  /** Cancels the sequence at the next token boundary. */
  signal?: AbortSignal;
}

/** A generated token, with its log-probability when asked. */
export interface GeneratedToken {
  token: number;
  logprob?: TokenLogprob;
}

export type FinishReason = "stop" | "length" | "cancelled";

/** A sequence in flight: its tokens as they come, and how it ended. */
export interface Generation {
  tokens: AsyncIterable<GeneratedToken>;
  done: Promise<{ finishReason: FinishReason; promptTokens: number; completionTokens: number }>;
}

export interface ServeEngineOptions {
  /** A Hugging Face decoder folder (its graph built with a key/value cache) or an Optimum-style decoder .onnx with one. */
  model: string;
  /** The base model's name in requests and /v1/models (default: `model` as given, as vLLM names it). */
  servedModelName?: string;
  /** Adapters known from the start, by name. */
  adapters?: Record<string, AdapterSource>;
  /** Rows decoded together (default 8); more requests wait. */
  maxBatch?: number;
  /** Adapters held in the session at once (default 16); the least recently used idle one is unloaded first. */
  maxLoadedAdapters?: number;
  /** Requests waiting for a row (default 256); more are refused (the server's 429). */
  maxWaiting?: number;
  /** Turns a Hub id into a local folder (lowrank's Hub client); without it only folders load. */
  resolve?: (location: string) => Promise<string>;
  executionProvider?: ExecutionProvider;
  logger?: Logger;
}

interface Sequence {
  request: GenerationRequest;
  decoder: TokenDecoder;
  /** The token to feed next (the last one chosen). */
  next: number;
  queue: GeneratedToken[];
  wake?: () => void;
  finished?: FinishReason;
  settle: (result: { finishReason: FinishReason; promptTokens: number; completionTokens: number }) => void;
}

/**
 * One base model and many adapters on one ONNX Runtime session, generating with continuous
 * batching: requests join the running batch after their prefill and leave it when done, at token
 * boundaries, and rows with different adapters run in one pass (the session's rowMixing: each row
 * keeps its own adapter's rank columns). Greedy output does not depend on what else is running.
 */
export class ServeEngine {
  private readonly waiting: Sequence[] = [];
  private running: Sequence[] = [];
  private loop: Promise<void> | undefined;
  private closed = false;

  private constructor(
    private readonly session: OnnxLoraSession,
    private readonly layout: KvLayout,
    readonly tokenizer: TextTokenizer | undefined,
    private readonly stopTokens: readonly number[],
    readonly adapters: AdapterPool,
    private readonly batch: KvBatch,
    private readonly options: { maxBatch: number; maxWaiting: number; logger: Logger },
    readonly modelName: string,
    readonly modelDir: string,
    /** The vocabulary size and the longest sequence (prompt + completion) the model takes, from config.json. */
    readonly vocabSize: number,
    readonly contextLength: number,
  ) {}

  readonly startedAt = Date.now();

  /**
   * @throws LowrankError USAGE for a model without a key/value cache, attention_mask or position_ids,
   *   and what building the graph and loading the adapters throw.
   */
  static async create(options: ServeEngineOptions): Promise<ServeEngine> {
    const logger = options.logger ?? silentLogger;
    const isFile = (await stat(options.model).catch(() => undefined))?.isFile() === true;
    const modelDir = isFile ? path.dirname(options.model) : options.model;
    // Every linear module gets a runtime slot, so adapters loaded later bind whatever they target;
    // the adapters known from the start are given at creation (their embeddings and replaced tensors get inputs too).
    const slots = isFile ? [] : await linearModules(options.model);
    const pool = new AdapterPool({ max: options.maxLoadedAdapters ?? 16, resolve: options.resolve, logger });
    const initial = await pool.readInitial(options.adapters ?? {});
    const model = isFile ? options.model : encodeModel(await buildCheckpointGraph(options.model));
    const session = await OnnxLoraSession.create(model, {
      label: options.model,
      modelDir,
      slots,
      adapters: Object.fromEntries([...initial].map(([name, a]) => [name, a.adapter])),
      rowMixing: true,
      executionProvider: options.executionProvider,
      logger,
    });
    pool.attach(session, initial);
    try {
      const layout = kvLayoutOf(session.session, options.model);
      if (!layout?.attentionMask || !layout.positionIds)
        throw new LowrankError(
          "USAGE",
          `${options.model}: serving needs a decoder with a key/value cache, attention_mask and position_ids (a Hugging Face decoder folder, or an Optimum export with past)`,
        );
      const tokenizer = await loadTokenizer(modelDir);
      const stopTokens = readStopTokens(modelDir, tokenizer?.eosTokenId) ?? [];
      const settings = { maxBatch: options.maxBatch ?? 8, maxWaiting: options.maxWaiting ?? 256, logger };
      const config = await readFile(path.join(modelDir, "config.json"), "utf8")
        .then((text) => JSON.parse(text) as Record<string, unknown>)
        .catch(() => ({}) as Record<string, unknown>);
      const num = (...keys: string[]) => keys.map((k) => config[k]).find((v): v is number => typeof v === "number");
      const outputDims = session.session.outputMetadata.find((m) => m.name === "logits");
      const vocab = num("vocab_size") ?? (outputDims?.isTensor && typeof outputDims.shape[2] === "number" ? outputDims.shape[2] : Number.MAX_SAFE_INTEGER);
      const context = num("n_positions", "max_position_embeddings") ?? 2048;
      const name = options.servedModelName ?? options.model;
      return new ServeEngine(session, layout, tokenizer, stopTokens, pool, new KvBatch(layout), settings, name, modelDir, vocab, context);
    } catch (error) {
      await session.release();
      throw error;
    }
  }

  /** Requests running and waiting. */
  get load(): { running: number; waiting: number } {
    return { running: this.running.length, waiting: this.waiting.length };
  }

  /**
   * Queues a sequence; its tokens arrive as the batch produces them.
   * @throws ServeError 404 for an unknown adapter, 429 when the queue is full or the engine is closing; LowrankError USAGE for an empty prompt.
   */
  async generate(request: GenerationRequest): Promise<Generation> {
    if (this.closed) throw overloaded("the server is shutting down");
    if (this.waiting.length >= this.options.maxWaiting) throw overloaded(`${this.waiting.length} requests are already waiting`);
    if (request.adapter !== null) await this.adapters.acquire(request.adapter);
    let settle!: Sequence["settle"];
    const done = new Promise<Parameters<Sequence["settle"]>[0]>((resolve) => {
      settle = resolve;
    });
    const sequence: Sequence = {
      request,
      decoder: new TokenDecoder(request.promptIds, {
        maxNewTokens: request.maxTokens,
        temperature: request.temperature,
        topP: request.topP,
        seed: request.seed,
        eosTokenId: this.stopTokens,
      }),
      next: 0,
      queue: [],
      settle: (result) => {
        if (request.adapter !== null) this.adapters.release(request.adapter);
        settle(result);
      },
    };
    this.waiting.push(sequence);
    this.loop ??= this.run().finally(() => {
      this.loop = undefined;
    });
    return { tokens: tokenStream(sequence), done };
  }

  /** Stops taking requests; in-flight ones finish unless `cancel`, then the session is released. */
  async close(options: { cancel?: boolean } = {}): Promise<void> {
    this.closed = true;
    if (options.cancel) for (const s of [...this.waiting, ...this.running]) s.finished ??= "cancelled";
    await this.loop;
    await this.session.release();
  }

  private async run(): Promise<void> {
    try {
      while (this.running.length > 0 || this.waiting.length > 0) {
        // Joins at a token boundary: one prefill per step keeps the running rows' pace.
        const joining = this.running.length < this.options.maxBatch ? this.waiting.shift() : undefined;
        if (joining) await this.prefill(joining);
        if (this.running.length > 0) await this.decodeStep();
        // Let requests and cancellations in between steps.
        await new Promise((resolve) => setImmediate(resolve));
      }
    } catch (error) {
      this.options.logger.warn(`serve: generation failed: ${(error as Error).message}`);
      for (const s of [...this.waiting.splice(0), ...this.running]) this.finish(s, "cancelled");
      this.running = [];
      this.batch.keep([]);
    }
  }

  private async prefill(s: Sequence): Promise<void> {
    if (this.cancelled(s)) return this.finish(s, "cancelled");
    const prompt = s.request.promptIds;
    const outputs = await this.session.run(kvStepFeeds(this.layout, [prompt], emptyPast(this.layout, 1), 0), { adapter: s.request.adapter });
    const logits = outputs.logits as ort.Tensor;
    const vocab = logits.dims[2]!;
    const data = logits.data as Float32Array;
    this.choose(s, data.subarray(data.length - vocab));
    if (s.decoder.done || this.cancelled(s)) return this.finish(s, s.decoder.done ? this.reason(s) : "cancelled");
    this.batch.add(presentAsPast(this.layout, outputs), prompt.length);
    this.running.push(s);
  }

  private async decodeStep(): Promise<void> {
    const feeds = this.batch.stepFeeds(this.running.map((s) => s.next));
    const outputs = await this.session.runMixed(
      feeds,
      this.running.map((s) => s.request.adapter),
    );
    this.batch.advance(outputs);
    const logits = outputs.logits!;
    const vocab = logits.dims[2]!;
    const data = logits.data as Float32Array;
    const keep: number[] = [];
    this.running.forEach((s, row) => {
      if (!this.cancelled(s)) this.choose(s, data.subarray(row * vocab, (row + 1) * vocab));
      if (s.decoder.done || this.cancelled(s)) this.finish(s, s.decoder.done ? this.reason(s) : "cancelled");
      else keep.push(row);
    });
    if (keep.length < this.running.length) {
      this.batch.keep(keep);
      this.running = keep.map((row) => this.running[row]!);
    }
  }

  private choose(s: Sequence, logits: Float32Array): void {
    const token = s.decoder.next(logits);
    s.next = token;
    s.queue.push({ token, ...(s.request.logprobs === undefined ? {} : { logprob: tokenLogprobs(logits, token, s.request.logprobs) }) });
    s.wake?.();
  }

  private cancelled(s: Sequence): boolean {
    return s.finished === "cancelled" || s.request.signal?.aborted === true;
  }

  private reason(s: Sequence): FinishReason {
    return this.stopTokens.includes(s.decoder.produced.at(-1) ?? -1) ? "stop" : "length";
  }

  private finish(s: Sequence, reason: FinishReason): void {
    s.finished = reason;
    s.wake?.();
    s.settle({ finishReason: reason, promptTokens: s.request.promptIds.length, completionTokens: s.decoder.produced.length });
  }
}

/** The tokens of a sequence as an async iterable: each as it is chosen, ending when the sequence does. */
async function* tokenStream(s: Sequence): AsyncGenerator<GeneratedToken> {
  for (;;) {
    const token = s.queue.shift();
    if (token) {
      yield token;
      continue;
    }
    if (s.finished) return;
    await new Promise<void>((resolve) => {
      s.wake = resolve;
    });
    s.wake = undefined;
  }
}

/** The linear modules of a checkpoint folder with their features (core's description), for runtime slots. */
async function linearModules(dir: string): Promise<{ name: string; inFeatures: number; outFeatures: number }[]> {
  const checkpoint = await Checkpoint.open(dir);
  try {
    const description = describeModel(checkpoint.config, checkpoint.tensorInfo());
    return description.modules
      .filter((m) => (m.kind === "linear" || m.kind === "conv1d") && !m.isOutputHead && m.inFeatures !== undefined && m.outFeatures !== undefined)
      .map((m) => ({ name: m.name, inFeatures: m.inFeatures!, outFeatures: m.outFeatures! }));
  } finally {
    await checkpoint.close();
  }
}
