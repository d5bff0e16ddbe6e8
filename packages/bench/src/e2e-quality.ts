import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { loadTokenizer, readAdapter, silentLogger, type LoraAdapter, type LoraConfigInput, type TrainParams } from "@lowrank/core";
import { buildDecoderGraph, encodeModel, OnnxBackend, OnnxLoraSession } from "@lowrank/backend-onnx";
import { generateBatchWithKvCache, kvLayoutOf } from "@lowrank/backend-onnx/internal";
import { checkpointParameterCount } from "./footprint.js";
import { corpusBleu } from "./metrics/bleu.js";
import { e2eExample, e2ePrompt, loadE2e, splitE2e } from "./tasks/e2e.js";

export type QualityMethod = "none" | "lora" | "lora-all-linear" | "full";

/** How each method is named in reports. */
export const QUALITY_METHOD_LABELS: Record<QualityMethod, string> = {
  none: "no adaptation",
  lora: "LoRA r=4 on c_attn",
  "lora-all-linear": "LoRA r=8, all-linear + head r=32",
  full: "full fine-tuning",
};

export interface QualityParams {
  modelDir: string;
  /** An E2E file ("<mr>||<ref>" lines); split by meaning representation, every fifth held out. */
  e2eFile: string;
  method: QualityMethod;
  steps: number;
  batchSize: number;
  learningRate: number;
  /** Held-out meaning representations for eval loss (3 references each) and BLEU (all references). */
  evalMrs: number;
  maxNewTokens: number;
  seed: number;
}

export interface QualityResult {
  method: QualityMethod;
  /** The engine that trained, evaluated and generated. */
  backend: "onnx";
  trainable_parameters: number;
  total_parameters: number;
  steps: number;
  learning_rate: number;
  eval_loss: number;
  perplexity: number;
  /** Corpus BLEU (0–1) of greedy generations against all references of each held-out MR. */
  bleu: number;
  train_seconds: number;
  losses: number[];
  samples: { mr: string; output: string }[];
}

/**
 * LoRA r=4, alpha 32 on GPT-2's attention projection, as in the demo (the paper's GPT-2 setting is
 * r=4 on q and v; GPT-2 fuses q, k, v into c_attn); and LoRA on every linear layer (PEFT's
 * `all-linear`: c_attn, c_proj, c_fc) at r=8 plus the output head (lm_head, tied to wte: LoRA adapts
 * the head only) at r=32, every module at scaling 4. On this small base the head is where LoRA
 * trailed full fine-tuning most (300 steps, eval loss: all-linear 0.632, + head r=8 0.625, + head
 * r=32 0.620, + wte too 0.648; full fine-tuning 0.593).
 */
const QUALITY_LORA: Record<"lora" | "lora-all-linear", LoraConfigInput> = {
  lora: { r: 4, lora_alpha: 32, target_modules: ["c_attn"], lora_dropout: 0.1 },
  "lora-all-linear": {
    r: 8,
    lora_alpha: 32,
    target_modules: ["c_attn", "c_proj", "c_fc", "lm_head"],
    rank_pattern: { lm_head: 32 },
    alpha_pattern: { lm_head: 128 },
    lora_dropout: 0.1,
  },
};

/** The E2E split as token ids: "<mr> || <ref>" + end-of-text, at most 128 tokens. */
async function e2eData(params: QualityParams) {
  const config = JSON.parse(await readFile(path.join(params.modelDir, "config.json"), "utf8"));
  const tokenizer = await loadTokenizer(params.modelDir, config);
  if (!tokenizer || tokenizer.eosTokenId === undefined)
    throw new Error(`${params.modelDir}: the quality benchmark needs tokenizer.json with an end-of-text token`);
  const eos = tokenizer.eosTokenId;
  const { train, held } = splitE2e(loadE2e(params.e2eFile));
  const encode = (text: string): number[] => [...tokenizer.encode(text), eos].slice(0, 128);
  const heldOut = held.slice(0, params.evalMrs);
  return {
    tokenizer,
    eos,
    heldOut,
    train: train.flatMap((g) => g.refs.map((r) => encode(e2eExample(g.mr, r)))),
    eval: heldOut.flatMap((g) => g.refs.slice(0, 3).map((r) => encode(e2eExample(g.mr, r)))),
  };
}

const jsonl = (rows: readonly number[][]): string => `${rows.map((ids) => JSON.stringify({ input_ids: ids })).join("\n")}\n`;

/**
 * Greedy generations on ONNX Runtime for a list of prompts: the model folder's graph with a
 * key/value cache, an adapter (when given) fed at run time, prompts in batches of 8.
 */
export async function generateGreedy(
  modelDir: string,
  prompts: readonly number[][],
  options: { adapter?: LoraAdapter; maxNewTokens: number; eosTokenId: number; onBatch?: (done: number) => void },
): Promise<number[][]> {
  const graph = encodeModel(await buildDecoderGraph(modelDir));
  const adapters: Record<string, LoraAdapter> = options.adapter ? { adapter: options.adapter } : {};
  const session = await OnnxLoraSession.create(graph, { label: modelDir, modelDir, adapters });
  try {
    const layout = kvLayoutOf(session.session, modelDir);
    if (!layout) throw new Error(`bench: ${modelDir}: the decoder graph has no key/value cache`);
    const rows: number[][] = [];
    for (let i = 0; i < prompts.length; i += 8) {
      const batch = prompts.slice(i, i + 8);
      const names = batch.map(() => (options.adapter ? "adapter" : null));
      rows.push(
        ...(await generateBatchWithKvCache(session, layout, batch, { maxNewTokens: options.maxNewTokens, eosTokenId: options.eosTokenId, adapters: names })),
      );
      options.onBatch?.(rows.length);
    }
    return rows;
  } finally {
    await session.release();
  }
}

/**
 * The paper's Table 3 at small scale, on ONNX Runtime: the embedded base on E2E with no adaptation,
 * with LoRA, or fully fine-tuned — each a `train` run through core's training loop on the same
 * examples in the same order for the same number of steps, its final evaluation the eval loss —
 * then BLEU of greedy generations for held-out meaning representations.
 */
export async function measureE2eQuality(params: QualityParams): Promise<QualityResult> {
  const data = await e2eData(params);
  const work = await mkdtemp(path.join(os.tmpdir(), `lowrank-quality-${params.method}-`));
  try {
    await writeFile(path.join(work, "train.jsonl"), jsonl(data.train));
    await writeFile(path.join(work, "eval.jsonl"), jsonl(data.eval));
    const backend = new OnnxBackend();
    await backend.init({ logger: silentLogger });
    const out = path.join(work, "out");
    // No adaptation: one step at learning rate 0 leaves LoRA's B at zero, so the evaluation is the base's.
    const none = params.method === "none";
    const run: TrainParams = {
      model: params.modelDir,
      data: path.join(work, "train.jsonl"),
      evalData: path.join(work, "eval.jsonl"),
      out,
      full: params.method === "full",
      lora: QUALITY_LORA[params.method === "lora-all-linear" ? "lora-all-linear" : "lora"],
      steps: none ? 1 : params.steps,
      learningRate: none ? 0 : params.learningRate,
      batchSize: params.batchSize,
      seqLen: 128,
      warmupSteps: Math.min(8, Math.floor(params.steps / 10)),
      schedule: "linear",
      weightDecay: 0.01,
      maxGradNorm: 1,
      seed: params.seed,
    };
    const losses: number[] = [];
    let evaluation: { loss: number; perplexity: number } | undefined;
    let trainable = 0;
    let trainSeconds = 0;
    for await (const e of backend.train(run)) {
      if (e.type === "start") trainable = e.trainableParameters;
      if (e.type === "step") {
        losses.push(e.loss);
        trainSeconds += e.seconds;
      }
      if (e.type === "eval") evaluation = e;
    }
    if (!evaluation) throw new Error(`bench: the ${params.method} run on ${params.modelDir} reported no evaluation`);
    const prompts = data.heldOut.map((g) => data.tokenizer.encode(e2ePrompt(g.mr)));
    const generated = await generateGreedy(params.method === "full" ? out : params.modelDir, prompts, {
      adapter: params.method === "full" || none ? undefined : await readAdapter(out),
      maxNewTokens: params.maxNewTokens,
      eosTokenId: data.eos,
    });
    const outputs = generated.map((ids) => data.tokenizer.decode(ids.filter((id) => id !== data.eos)).trim());
    return {
      method: params.method,
      backend: "onnx",
      trainable_parameters: none ? 0 : trainable,
      total_parameters: await checkpointParameterCount(params.modelDir),
      steps: none ? 0 : params.steps,
      learning_rate: params.learningRate,
      eval_loss: evaluation.loss,
      perplexity: evaluation.perplexity,
      bleu: corpusBleu(
        outputs,
        data.heldOut.map((g) => g.refs),
      ),
      train_seconds: none ? 0 : trainSeconds,
      losses: none ? [] : losses,
      samples: data.heldOut.slice(0, 3).map((g, i) => ({ mr: g.mr, output: outputs[i]! })),
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
