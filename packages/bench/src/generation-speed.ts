import { readFile } from "node:fs/promises";
import path from "node:path";
import type { LoraAdapter } from "@lowrank/core";
import { elementCount, SeededRandom } from "@lowrank/core/internal";
import { AdapterHost, generate, loadModel, selectEngine } from "@lowrank/backend-tfjs";
import { buildDecoderGraph, encodeModel, OnnxLoraSession } from "@lowrank/backend-onnx";
import { generateBatchWithKvCache, kvLayoutOf } from "@lowrank/backend-onnx/internal";
import { timeDecodeSteps } from "./decode-speed.js";
import { checkpointParameterCount } from "./footprint.js";
import { timeInterleaved, type Spread } from "./stats.js";

/** Batched greedy generation with one unmerged adapter, ONNX Runtime against TensorFlow.js. */
export interface GenerationRow {
  model: string;
  prompts: number;
  prompt_tokens: number;
  new_tokens: number;
  ort_provider: string;
  tfjs_engine: string;
  /** False: tfjs's generate() takes one prompt, so its prompts run one after another. */
  tfjs_batched: boolean;
  /** Seconds to generate every prompt's new tokens. */
  onnx_seconds: Spread;
  tfjs_seconds: Spread;
  /** Prompts whose new tokens are the same on both runtimes (greedy on the same weights; a near-tie in random logits may differ). */
  same_tokens_prompts: number;
}

/** Decoding at batch 1 on ONNX Runtime (adapter unmerged, key/value cache), per new token after the prefill. */
export interface DecodeRow {
  model: string;
  prompt_tokens: number;
  new_tokens: number;
  ort_provider: string;
  token_ms: Spread;
  onnx_decode_tokens_per_second: number;
  /** What one step reads at least: every stored weight and the adapter's factors, as float32. */
  weight_bytes: number;
}

export interface GenerationParams {
  modelDir: string;
  model: string;
  adapter: LoraAdapter;
  prompts: number;
  promptTokens: number;
  newTokens: number;
  rounds: number;
  warmup: number;
  decodeRepeats: number;
}

function randomPrompts(count: number, length: number, vocab: number): number[][] {
  const rng = new SeededRandom(17);
  return Array.from({ length: count }, () => Array.from({ length }, () => Math.floor(rng.next() * vocab)));
}

const seconds = (ms: Spread): Spread => ({ median: ms.median / 1000, min: ms.min / 1000, max: ms.max / 1000, n: ms.n });

/**
 * Times greedy generation of `prompts` prompts with the adapter unmerged on both runtimes (ONNX
 * Runtime: one batch through the key/value cache; tfjs: its cached generate() per prompt), the two
 * interleaved round by round; and decoding at batch 1 on ONNX Runtime, timed first, before tfjs is
 * loaded.
 */
export async function measureGenerationSpeed(params: GenerationParams): Promise<{ generation: GenerationRow; decode: DecodeRow }> {
  const config = JSON.parse(await readFile(path.join(params.modelDir, "config.json"), "utf8")) as { vocab_size: number };
  const prompts = randomPrompts(params.prompts, params.promptTokens, config.vocab_size);
  const options = { maxNewTokens: params.newTokens, eosTokenId: [] };
  const adapter = "adapter";
  // Before any tfjs model exists: without it tfjs runs on its pure-JavaScript kernels.
  const engine = await selectEngine();
  const session = await OnnxLoraSession.create(encodeModel(await buildDecoderGraph(params.modelDir)), { adapters: { [adapter]: params.adapter } });
  try {
    const layout = kvLayoutOf(session.session, params.modelDir);
    if (!layout) throw new Error(`bench: the graph built from ${params.modelDir} has no key/value cache`);
    const tokenMs = await timeDecodeSteps(session, layout, { prompt: prompts[0]!, newTokens: params.newTokens, repeats: params.decodeRepeats, adapter });
    const model = await loadModel(params.modelDir);
    let onnxTokens: number[][] = [];
    let tfjsTokens: number[][] = [];
    let times: Record<string, Spread>;
    try {
      new AdapterHost(model).load(adapter, params.adapter);
      times = await timeInterleaved(
        {
          onnx: async () => void (onnxTokens = await generateBatchWithKvCache(session, layout, prompts, { ...options, adapters: prompts.map(() => adapter) })),
          tfjs: () => void (tfjsTokens = prompts.map((prompt) => generate(model, prompt, options))),
        },
        params.rounds,
        params.warmup,
      );
    } finally {
      model.store.dispose();
    }
    const adapterElements = [...params.adapter.tensors.values()].reduce((sum, t) => sum + elementCount(t.shape), 0);
    const common = { model: params.model, prompt_tokens: params.promptTokens, new_tokens: params.newTokens, ort_provider: session.provider };
    return {
      generation: {
        ...common,
        prompts: params.prompts,
        tfjs_engine: engine.engine,
        tfjs_batched: false,
        onnx_seconds: seconds(times.onnx!),
        tfjs_seconds: seconds(times.tfjs!),
        same_tokens_prompts: onnxTokens.filter((row, i) => row.join() === tfjsTokens[i]?.join()).length,
      },
      decode: {
        ...common,
        token_ms: tokenMs,
        onnx_decode_tokens_per_second: 1000 / tokenMs.median,
        weight_bytes: 4 * ((await checkpointParameterCount(params.modelDir)) + adapterElements),
      },
    };
  } finally {
    await session.release();
  }
}
