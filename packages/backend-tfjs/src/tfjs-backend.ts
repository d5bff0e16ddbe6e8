import * as tf from "@tensorflow/tfjs";
import { LowrankError, mergeCheckpoint, silentLogger } from "@lowrank/core";
import type { BackendRegistry, GenerateParams, GenerateResult, Logger, LowrankBackend } from "@lowrank/core";
import type { MergeParams, PredictParams, PredictResult, TrainEvent, TrainParams } from "@lowrank/core";
import { checkModelInput, runTraining } from "@lowrank/core/internal";
import { selectEngine, type EngineChoice } from "./engine/select-engine.js";
import { inferenceContext } from "./layers/lora-branch.js";
import { attachAdapter, detachAdapter, setMerged } from "./lora/attach-adapter.js";
import { loadModel } from "./models/load-model.js";
import type { TfjsModel } from "./models/model.js";
import { prepareTfjsTraining } from "./training/prepare-tfjs-training.js";
import { generate } from "./generate/generate.js";
import { loadTokenizer, readStopTokens } from "@lowrank/core";

/** Checks token ids against the vocabulary and the mask against the ids. @throws LowrankError USAGE */
export function checkPredictInput(model: TfjsModel, inputIds: number[][], attentionMask?: number[][]): void {
  checkModelInput({ inputIds, attentionMask, vocabSize: model.vocabSize });
}

/**
 * The TensorFlow.js backend: inference and training on tfjs-node-gpu, tfjs-node, wasm or cpu (best
 * available), merging through core.
 */
export class TfjsBackend implements LowrankBackend {
  readonly name = "tfjs";
  readonly capabilities = ["infer", "generate", "train", "merge"] as const;
  readonly devices = ["gpu", "cpu"] as const;
  private engine?: EngineChoice;
  private readonly models = new Map<string, Promise<TfjsModel>>();
  private logger: Logger = silentLogger;

  constructor(private readonly options: { engine?: string } = {}) {}

  async init(options: { logger: Logger }): Promise<{ device: string; note: string }> {
    this.logger = options.logger;
    this.engine = await selectEngine({ force: this.options.engine, logger: options.logger });
    const device = this.engine.engine === "tfjs-node-gpu" ? "gpu" : "cpu";
    return { device, note: `TensorFlow.js ${this.engine.engine} (${this.engine.reason})` };
  }

  /** The model at `dir`, loaded once. */
  model(dir: string): Promise<TfjsModel> {
    let pending = this.models.get(dir);
    if (!pending) {
      pending = loadModel(dir);
      pending.catch(() => this.models.delete(dir));
      this.models.set(dir, pending);
    }
    return pending;
  }

  async predict(params: PredictParams): Promise<PredictResult> {
    const model = await this.model(params.model);
    checkPredictInput(model, params.inputIds, params.attentionMask);
    const attached = params.adapter ? attachAdapter(model, params.adapter, { logger: this.logger }) : undefined;
    try {
      if (attached && params.merge) setMerged(model, true);
      let result: PredictResult | undefined;
      tf.tidy(() => {
        const out = model.forward({ inputIds: tf.tensor2d(params.inputIds, undefined, "int32"), attentionMask: params.attentionMask }, inferenceContext());
        result = { logits: { data: out.logits.dataSync() as Float32Array, shape: out.logits.shape } };
        if (model.task === "seq-cls") result.lastHiddenState = { data: out.lastHiddenState.dataSync() as Float32Array, shape: out.lastHiddenState.shape };
      });
      return result!;
    } finally {
      if (attached) detachAdapter(model, attached);
    }
  }

  async generate(params: GenerateParams): Promise<GenerateResult> {
    const model = await this.model(params.model);
    const tokenizer = await loadTokenizer(params.model, model.config);
    let prompt = params.promptIds;
    if (!prompt) {
      if (params.prompt === undefined) throw new LowrankError("USAGE", "give a prompt (text) or prompt ids");
      if (!tokenizer) throw new LowrankError("USAGE", `${params.model} has no tokenizer.json; give the prompt as token ids`);
      prompt = tokenizer.encode(params.prompt);
    }
    checkPredictInput(model, [prompt]);
    const attached = params.adapter ? attachAdapter(model, params.adapter, { logger: this.logger }) : undefined;
    try {
      if (attached && params.merge) setMerged(model, true);
      const ids = generate(model, prompt, {
        maxNewTokens: params.maxNewTokens,
        temperature: params.temperature,
        topK: params.topK,
        topP: params.topP,
        seed: params.seed,
        useCache: params.useCache,
        eosTokenId: readStopTokens(params.model, tokenizer?.eosTokenId) ?? model.eosTokenId,
      });
      return { ids, ...(tokenizer ? { text: tokenizer.decode(ids) } : {}) };
    } finally {
      if (attached) detachAdapter(model, attached);
    }
  }

  /** Trains on a fresh copy of the model (the inference cache is left alone). */
  train(params: TrainParams): AsyncGenerator<TrainEvent> {
    const device = this.engine ? `${this.engine.engine}` : "tfjs";
    return runTraining(prepareTfjsTraining({ logger: this.logger, device }), params, { backend: "tfjs" });
  }

  merge(params: MergeParams) {
    return mergeCheckpoint({ ...params, logger: this.logger });
  }

  async dispose(): Promise<void> {
    for (const pending of this.models.values()) (await pending.catch(() => undefined))?.store.dispose();
    this.models.clear();
  }
}

/** Registers the tfjs backend (priority 10). */
export function register(registry: BackendRegistry, options: { engine?: string } = {}): void {
  registry.register("tfjs", () => new TfjsBackend(options), { priority: 10 });
}
