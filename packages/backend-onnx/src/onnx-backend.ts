import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import { LowrankError, mergeCheckpoint, silentLogger } from "@lowrank/core";
import type { BackendRegistry, GenerateParams, GenerateResult, Logger, LowrankBackend } from "@lowrank/core";
import type { MergeParams, PredictParams, PredictResult, TrainEvent, TrainParams } from "@lowrank/core";
import { checkModelInput, runTraining } from "@lowrank/core/internal";
import { decodeModel, encodeModel } from "./onnx/onnx-codec.js";
import { exportGpt2Onnx } from "./export/export-gpt2.js";
import { onnxVocabSize } from "./onnx/onnx-vocab-size.js";
import { onnxStopTokens } from "./onnx/onnx-generation-config.js";
import { generateWithKvCache, kvLayoutOf } from "./session/kv-cache.js";
import { mergeIntoOnnxModel, mergeOnnxFile } from "./onnx/merge-onnx.js";
import { idsTensor, createOrtSession, createSessionForModel, type ExecutionProvider } from "./session/ort-session.js";
import { OnnxLoraSession } from "./session/onnx-lora-session.js";
import { prepareOnnxTraining } from "./training/prepare-onnx-training.js";
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
interface OnnxSource {
  bytes: Uint8Array;
  label: string;
  dir: string;
  /** The file, when the model is one (ONNX Runtime then resolves its external data itself). */
  file?: string;
}

/**
 * The ONNX model for a model argument: a .onnx file, model.onnx inside a folder, or — for a Hugging
 * Face GPT-2 folder without one — the graph built from its checkpoint in memory (exportGpt2Onnx).
 * @throws LowrankError CHECKPOINT_INVALID when none of these applies.
 */
async function onnxSourceOf(model: string): Promise<OnnxSource> {
  const info = await stat(model).catch(() => undefined);
  if (info?.isDirectory() && !(await stat(path.join(model, "model.onnx")).catch(() => undefined))) {
    const config = await readFile(path.join(model, "config.json"), "utf8").then(
      (t) => JSON.parse(t) as { model_type?: unknown },
      () => undefined,
    );
    if (config?.model_type === "gpt2") return { bytes: encodeModel(await exportGpt2Onnx(model)), label: model, dir: model };
    throw new LowrankError("CHECKPOINT_INVALID", `${model}: has no model.onnx (the onnx backend runs ONNX files, or builds GPT-2 from its checkpoint)`);
  }
  const file = await onnxFileOf(model);
  return { bytes: await readFile(file), label: file, dir: path.dirname(file), file };
}

/**
 * The ONNX Runtime backend: inference with adapters merged offline or fed per run, and LoRA training
 * of Hugging Face GPT-2 and LLaMA-family checkpoints through one loss-and-gradients graph, on the
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

  async predict(params: PredictParams): Promise<PredictResult> {
    const source = await onnxSourceOf(params.model);
    const { bytes, label: file, dir } = source;
    const graph = decodeModel(bytes, file, { checkRoundTrip: false }).graph;
    checkModelInput({ inputIds: params.inputIds, attentionMask: params.attentionMask, vocabSize: onnxVocabSize(graph, dir) });
    const options = { executionProvider: this.provider, threads: this.threads, logger: this.logger };
    let run: (feeds: Record<string, ort.Tensor>) => Promise<ort.InferenceSession.OnnxValueMapType>;
    let release: () => Promise<void>;
    let inputs: readonly string[];
    if (params.adapter && !params.merge) {
      const session = await OnnxLoraSession.create(bytes, { ...options, label: file, modelDir: dir, adapters: { adapter: params.adapter } });
      run = (feeds) => session.run(feeds, { adapter: "adapter" });
      release = () => session.release();
      inputs = session.modelInputs();
    } else {
      let session: ort.InferenceSession;
      if (params.adapter) {
        const decoded = decodeModel(bytes, file);
        const merged = mergeIntoOnnxModel(decoded, params.adapter, { modelDir: dir, logger: this.logger, label: file }).model;
        ({ session } = await createSessionForModel(merged, dir, options));
      } else {
        ({ session } = await createOrtSession(source.file ?? bytes, options));
      }
      run = (feeds) => session.run(feeds);
      release = () => session.release();
      inputs = session.inputNames;
    }
    try {
      const feeds: Record<string, ort.Tensor> = { input_ids: idsTensor(params.inputIds) };
      if (inputs.includes("attention_mask")) feeds.attention_mask = idsTensor(params.attentionMask ?? params.inputIds.map((r) => r.map(() => 1)));
      const unknown = inputs.filter((n) => !(n in feeds));
      if (unknown.length > 0) throw new LowrankError("USAGE", `${file}: needs inputs lowrank does not provide (${unknown.join(", ")})`);
      const out = await run(feeds);
      const firstOutput = Object.keys(out)[0];
      const logits = out.logits ?? (firstOutput === undefined ? undefined : out[firstOutput]);
      if (!logits) throw new LowrankError("CHECKPOINT_INVALID", `${file}: the model has no outputs`);
      const result: PredictResult = { logits: { data: logits.data as Float32Array, shape: logits.dims.map(Number) } };
      if (out.last_hidden_state) result.lastHiddenState = { data: out.last_hidden_state.data as Float32Array, shape: out.last_hidden_state.dims.map(Number) };
      return result;
    } finally {
      await release();
    }
  }

  /**
   * Generates from a decoder exported with a key/value cache (Optimum's layout: past_key_values.N.*
   * in, present.N.* out): the prompt once, then one token per step, with the adapter fed at run time
   * or merged (`merge`). Tokens are chosen by core's TokenDecoder, so they equal the tfjs backend's
   * for the same logits and seed; stop tokens come from generation_config.json beside the file.
   * @throws LowrankError USAGE for a text prompt (give token ids), ids outside the vocabulary, or a
   *   graph without cache inputs.
   */
  async generate(params: GenerateParams): Promise<GenerateResult> {
    const file = await onnxFileOf(params.model);
    const dir = path.dirname(file);
    if (params.promptIds === undefined) {
      throw new LowrankError(
        "USAGE",
        `${file}: the onnx backend takes the prompt as token ids (--prompt-ids); text prompts are tokenised by the tfjs backend (--backend tfjs)`,
      );
    }
    const bytes = await readFile(file);
    const graph = decodeModel(bytes, file, { checkRoundTrip: false }).graph;
    checkModelInput({ inputIds: [params.promptIds], vocabSize: onnxVocabSize(graph, dir), label: "prompt" });
    const options = { executionProvider: this.provider, threads: this.threads, logger: this.logger };
    const session = await OnnxLoraSession.create(bytes, {
      ...options,
      label: file,
      modelDir: dir,
      adapters: params.adapter ? { adapter: params.adapter } : {},
    });
    try {
      const layout = kvLayoutOf(session.session, file);
      if (!layout) {
        throw new LowrankError(
          "USAGE",
          `${file}: has no key/value cache inputs (past_key_values.N.key); the onnx backend generates with decoders exported with a cache, as Optimum ` +
            `exports them — or use --backend tfjs`,
        );
      }
      if (params.adapter && params.merge) await session.merge("adapter");
      const ids = await generateWithKvCache(session, layout, params.promptIds, {
        maxNewTokens: params.maxNewTokens,
        temperature: params.temperature,
        topK: params.topK,
        topP: params.topP,
        seed: params.seed,
        eosTokenId: onnxStopTokens(dir),
        adapter: params.adapter ? "adapter" : null,
      });
      return { ids };
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

/** Registers the onnx backend (priority 5: after tfjs for "best available", chosen with --backend onnx). */
export function register(registry: BackendRegistry, options: { executionProvider?: ExecutionProvider; threads?: number } = {}): void {
  registry.register("onnx", () => new OnnxBackend(options), { priority: 5 });
}
