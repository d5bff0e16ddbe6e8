import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import { bindAdapter, Checkpoint, describeModel, LowrankError, loadTokenizer, mergeCheckpoint, readStopTokens, silentLogger } from "@lowrank/core";
import type { BackendJob, BackendRegistry, GenerateParams, GenerateResult, Logger, LoraAdapter, LowrankBackend } from "@lowrank/core";
import type { MergeParams, PredictParams, PredictResult, TrainEvent, TrainParams } from "@lowrank/core";
import { checkModelInput, runTraining } from "@lowrank/core/internal";
import { decodeModel, encodeModel } from "./onnx/onnx-codec.js";
import { buildCheckpointGraph, modelTypeIn, ONNX_MODEL_TYPES } from "./export/checkpoint-graph.js";
import { onnxVocabSize } from "./onnx/onnx-vocab-size.js";
import { emptyPast, generateWithKvCache, generateWithoutCache, kvLayoutOf, kvStepFeeds } from "./session/kv-cache.js";
import { mergeIntoOnnxModel } from "./onnx/merge-onnx.js";
import { mergeOnnxFile } from "./onnx/merge-onnx-file.js";
import { idsTensor, type ExecutionProvider } from "./session/ort-session.js";
import { OnnxLoraSession } from "./session/onnx-lora-session.js";
import { prepareOnnxTraining } from "./training/prepare-onnx-training.js";
import { planOnnxLoraTraining } from "./training/create-onnx-lora-training.js";
import * as ort from "onnxruntime-node";

/** The .onnx file for a model argument: the file itself, or model.onnx inside a folder. */
export async function onnxFileOf(model: string): Promise<string> {
  const info = await stat(model).catch(() => undefined);
  if (info?.isDirectory()) {
    const inside = path.join(model, "model.onnx");
    if (await stat(inside).catch(() => undefined)) return inside;
    throw new LowrankError("CHECKPOINT_INVALID", `${model}: has no model.onnx (the onnx backend runs ONNX files)`);
  }
  if (!info) throw new LowrankError("CHECKPOINT_INVALID", `${model}: no such ONNX file or folder`);
  return model;
}

/** An ONNX model to run: its bytes, a label for messages and the folder its side files live in. */
export interface OnnxSource {
  /** Emptied once a session holds the model (see OnnxBackend.open). */
  bytes: Uint8Array;
  label: string;
  dir: string;
  /** The file, when the model is one (ONNX Runtime then resolves its external data itself). */
  file?: string;
}

/** Whether `model` is a folder whose checkpoint (config.json of a model type with a graph builder, and weights) lowrank builds a graph from. */
async function buildsFromCheckpoint(model: string): Promise<boolean> {
  if (!(await stat(model).catch(() => undefined))?.isDirectory()) return false;
  const type = await modelTypeIn(model);
  if (type === undefined || !ONNX_MODEL_TYPES.includes(type)) return false;
  const checkpoint = await Checkpoint.open(model).catch(() => undefined);
  await checkpoint?.close();
  return checkpoint !== undefined;
}

/**
 * Why `model` cannot be run here, or undefined when it can: a .onnx file, a Hugging Face checkpoint
 * folder whose graph buildCheckpointGraph builds (preferred: its graph has a key/value cache), or a
 * folder with model.onnx (an export without weights beside it).
 */
async function unsupportedModel(model: string): Promise<string | undefined> {
  const info = await stat(model).catch(() => undefined);
  if (!info) return `${model}: no such ONNX file or folder`;
  if (!info.isDirectory() || (await buildsFromCheckpoint(model)) || (await stat(path.join(model, "model.onnx")).catch(() => undefined))) return undefined;
  const type = await modelTypeIn(model);
  return (
    `${model}: has no model.onnx, and ${type === undefined ? "no config.json model_type" : `model_type "${type}"`} has no ONNX graph builder ` +
    `(supported: ${ONNX_MODEL_TYPES.join(", ")})`
  );
}

/**
 * Binds the adapter to the description of the checkpoint in a model folder with core, before any
 * graph is built: an adapter that does not fit gets core's message, as on every backend.
 */
async function checkAdapterFits(dir: string, adapter: LoraAdapter): Promise<void> {
  const checkpoint = await Checkpoint.open(dir);
  try {
    bindAdapter(adapter, describeModel(checkpoint.config, checkpoint.tensorInfo()), { label: "adapter" });
  } finally {
    await checkpoint.close();
  }
}

/**
 * The ONNX model for a model argument: the graph built in memory from a Hugging Face checkpoint
 * folder (buildCheckpointGraph), model.onnx inside a folder without weights, or a .onnx file.
 * @throws LowrankError CHECKPOINT_INVALID when none of these applies.
 */
export async function onnxSourceOf(model: string, adapter?: LoraAdapter): Promise<OnnxSource> {
  const reason = await unsupportedModel(model);
  if (reason) throw new LowrankError("CHECKPOINT_INVALID", reason);
  if (await buildsFromCheckpoint(model)) {
    if (adapter) await checkAdapterFits(model, adapter);
    return { bytes: encodeModel(await buildCheckpointGraph(model)), label: model, dir: model };
  }
  const file = await onnxFileOf(model);
  return { bytes: await readFile(file), label: file, dir: path.dirname(file), file };
}

/** An error that says the ONNX trainer lacks something (an architecture, an adapter type), not that the input is bad. */
function isTrainerGap(error: LowrankError): boolean {
  return error.code === "TARGET_UNSUPPORTED" || /not supported by the onnx trainer/.test(error.message);
}

/** Why the ONNX trainer would not take this run (core's planning, no graph built), or undefined. */
async function onnxTrainingDeclineReason(train: TrainParams): Promise<string | undefined> {
  try {
    await planOnnxLoraTraining({ model: train.model, lora: train.lora, task: train.task, logger: silentLogger });
    return undefined;
  } catch (error) {
    // What the ONNX trainer lacks is declined; bad input is left to fail the same way on any backend.
    if (error instanceof LowrankError && isTrainerGap(error)) return error.message;
    return undefined;
  }
}

function vocabSizeOf(source: OnnxSource): number | undefined {
  return onnxVocabSize(decodeModel(source.bytes, source.label, { checkRoundTrip: false }).graph, source.dir);
}

/**
 * The ONNX Runtime backend: inference with adapters merged offline or fed per run, and LoRA (or full)
 * training of Hugging Face GPT-2 and LLaMA-family checkpoints, and sequence classification on BERT /
 * RoBERTa / XLM-R / DeBERTa-v2 and v3, through one loss-and-gradients graph, on the
 * CUDA execution provider when asked and available, else the CPU.
 */
export class OnnxBackend implements LowrankBackend {
  readonly name = "onnx";
  readonly capabilities = ["infer", "generate", "merge", "train"] as const;
  readonly devices = ["cuda", "cpu"] as const;
  private logger: Logger = silentLogger;
  private provider: ExecutionProvider;
  private readonly threads: number | undefined;

  constructor(options: { executionProvider?: ExecutionProvider; threads?: number } = {}) {
    this.provider = options.executionProvider ?? (process.env.LOWRANK_ORT_PROVIDER === "cuda" ? "cuda" : "cpu");
    this.threads = options.threads ?? (process.env.LOWRANK_ORT_THREADS ? Number(process.env.LOWRANK_ORT_THREADS) : undefined);
  }

  async init(options: { logger: Logger }): Promise<{ device: string; note: string }> {
    this.logger = options.logger;
    if (typeof ort.InferenceSession?.create !== "function") throw new Error("onnxruntime-node did not load");
    const version = ort.env.versions?.common;
    return {
      device: this.provider,
      note: `ONNX Runtime${version ? ` ${version}` : ""} (${this.provider === "cuda" ? "CUDA requested; falls back to CPU per session" : "CPU"})`,
    };
  }

  /**
   * Declines a model it has no graph for, and a training run its trainer does not cover (other
   * architectures, DeBERTa-v2's convolution layer, sequence classification on a decoder,
   * LoftQ): the reason is the error the run would meet here.
   */
  async declineReason(job: BackendJob): Promise<string | undefined> {
    if (job.capability === "merge") return undefined;
    if (job.capability === "train") return job.train ? onnxTrainingDeclineReason(job.train) : undefined;
    return job.model === undefined ? undefined : unsupportedModel(job.model);
  }

  /**
   * One session for a model and an optional adapter: fed at run time (`runAs` names it), or merged
   * into the weights first (`merge`) so the session is the merged model alone.
   */
  private async open(source: OnnxSource, adapter: LoraAdapter | undefined, merge: boolean | undefined) {
    const options = { executionProvider: this.provider, threads: this.threads, logger: this.logger, label: source.label, modelDir: source.dir };
    const { file, dir } = source;
    const reloadModel = file ? () => readFile(file) : async () => encodeModel(await buildCheckpointGraph(dir));
    const bytes = source.bytes;
    // From here the weights live in ONNX Runtime only.
    source.bytes = new Uint8Array(0);
    if (adapter && merge) {
      const merged = mergeIntoOnnxModel(decodeModel(bytes, source.label), adapter, { modelDir: source.dir, logger: this.logger, label: source.label });
      const remerge = async () => encodeModel(mergeIntoOnnxModel(decodeModel(await reloadModel(), source.label), adapter, { modelDir: dir }).model);
      return { session: await OnnxLoraSession.create(encodeModel(merged.model), { ...options, reloadModel: remerge }), runAs: null };
    }
    const model = adapter || !file ? bytes : file;
    return {
      session: await OnnxLoraSession.create(model, { ...options, reloadModel, adapters: adapter ? { adapter } : {} }),
      runAs: adapter ? "adapter" : null,
    };
  }

  /**
   * Logits for token ids. Decoders with a key/value cache (built from a checkpoint or exported so)
   * get an empty past and positions 0 … seq − 1, as transformers' forward without a cache.
   */
  async predict(params: PredictParams): Promise<PredictResult> {
    const source = await onnxSourceOf(params.model, params.adapter);
    checkModelInput({ inputIds: params.inputIds, attentionMask: params.attentionMask, vocabSize: vocabSizeOf(source) });
    const { session, runAs } = await this.open(source, params.adapter, params.merge);
    try {
      const layout = kvLayoutOf(session.session, source.label);
      const ones = params.inputIds.map((r) => r.map(() => 1));
      const feeds: Record<string, ort.Tensor> = layout
        ? kvStepFeeds(layout, params.inputIds, emptyPast(layout, params.inputIds.length), 0)
        : { input_ids: idsTensor(params.inputIds) };
      if (session.modelInputs().includes("attention_mask")) feeds.attention_mask = idsTensor(params.attentionMask ?? ones);
      const unknown = session.modelInputs().filter((n) => !(n in feeds));
      if (unknown.length > 0) throw new LowrankError("USAGE", `${source.label}: needs inputs lowrank does not provide (${unknown.join(", ")})`);
      const out = await session.run(feeds, { adapter: runAs });
      const firstOutput = Object.keys(out)[0];
      const logits = out.logits ?? (firstOutput === undefined ? undefined : out[firstOutput]);
      if (!logits) throw new LowrankError("CHECKPOINT_INVALID", `${source.label}: the model has no outputs`);
      const result: PredictResult = { logits: { data: logits.data as Float32Array, shape: logits.dims.map(Number) } };
      if (out.last_hidden_state) result.lastHiddenState = { data: out.last_hidden_state.data as Float32Array, shape: out.last_hidden_state.dims.map(Number) };
      return result;
    } finally {
      await session.release();
    }
  }

  /**
   * Generates with a key/value cache — from a decoder checkpoint folder (its graph built in memory)
   * or a decoder exported with a cache (Optimum's layout: past_key_values.N.* in, present.N.* out):
   * the prompt once, then one token per step, with the adapter fed at run time or merged (`merge`).
   * A decoder exported without a cache (input_ids → logits) runs the whole sequence per token.
   * Text prompts go through the model folder's tokenizer.json. Tokens are chosen by core's
   * TokenDecoder, so they equal the tfjs backend's for the same logits and seed; stop tokens as
   * core's readStopTokens reads them.
   * @throws LowrankError USAGE for a text prompt without a tokenizer or ids outside the vocabulary.
   */
  async generate(params: GenerateParams): Promise<GenerateResult> {
    const source = await onnxSourceOf(params.model, params.adapter);
    const tokenizer = await loadTokenizer(source.dir);
    let prompt = params.promptIds;
    if (prompt === undefined) {
      if (params.prompt === undefined) throw new LowrankError("USAGE", "give a prompt (text) or prompt ids");
      if (!tokenizer) throw new LowrankError("USAGE", `${source.dir} has no tokenizer.json; give the prompt as token ids`);
      prompt = tokenizer.encode(params.prompt);
    }
    checkModelInput({ inputIds: [prompt], vocabSize: vocabSizeOf(source), label: "prompt" });
    const { session, runAs } = await this.open(source, params.adapter, params.merge);
    try {
      const layout = kvLayoutOf(session.session, source.label);
      const decode = {
        maxNewTokens: params.maxNewTokens,
        temperature: params.temperature,
        topK: params.topK,
        topP: params.topP,
        seed: params.seed,
        eosTokenId: readStopTokens(source.dir, tokenizer?.eosTokenId),
        adapter: runAs,
      };
      // A decoder exported without a cache runs the whole sequence for each new token.
      const ids = layout ? await generateWithKvCache(session, layout, prompt, decode) : await generateWithoutCache(session, prompt, decode);
      return { ids, ...(tokenizer ? { text: tokenizer.decode(ids) } : {}) };
    } finally {
      await session.release();
    }
  }

  /**
   * Trains a LoRA adapter on a Hugging Face model folder: core's runTraining with this backend's
   * stepper (prepareOnnxTraining), so the events and files are the tfjs backend's; each step's
   * `seconds` is its wall time.
   */
  train(params: TrainParams): AsyncGenerator<TrainEvent> {
    return runTraining(prepareOnnxTraining({ logger: this.logger, executionProvider: this.provider, threads: this.threads }), params, { backend: "onnx" });
  }

  /** Merges into an ONNX file (`baseDir` is a .onnx path) or, for a Hugging Face folder, through core. */
  async merge(params: MergeParams) {
    if (params.baseDir.endsWith(".onnx")) {
      const merged = await mergeOnnxFile({ model: params.baseDir, adapter: params.adapter, out: params.outDir, safe: params.safe, logger: this.logger });
      return {
        mergedModules: merged.mergedModules,
        replacedTensors: merged.replacedTensors,
        tensorCount: merged.model.graph.initializer.length,
        bytesWritten: merged.bytes,
      };
    }
    return mergeCheckpoint({ ...params, logger: this.logger });
  }
}

/** Registers the onnx backend (priority 20: the default wherever it takes the job, see declineReason). */
export function register(registry: BackendRegistry, options: { executionProvider?: ExecutionProvider; threads?: number } = {}): void {
  registry.register("onnx", () => new OnnxBackend(options), { priority: 20 });
}
