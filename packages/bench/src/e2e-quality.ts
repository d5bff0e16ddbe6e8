import { createLoraConfig, loadTokenizer } from "@lowrank/core";
import { generate, loadModel, selectEngine } from "@lowrank/backend-tfjs";
import { createFullTraining, createLoraTraining, Trainer } from "@lowrank/backend-tfjs/internal";
import { checkpointParameterCount } from "./footprint.js";
import { corpusBleu } from "./metrics/bleu.js";
import { e2eExample, e2ePrompt, loadE2e, splitE2e } from "./tasks/e2e.js";

export type QualityMethod = "none" | "lora" | "lora-all-linear" | "full";

/** How each method is named in reports. */
export const QUALITY_METHOD_LABELS: Record<QualityMethod, string> = {
  none: "no adaptation",
  lora: "LoRA r=4 on c_attn",
  "lora-all-linear": "LoRA r=8, all-linear",
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
 * r=4 on q and v; GPT-2 fuses q, k, v into c_attn); and r=8 on every linear layer, for comparison.
 */
const QUALITY_LORA = {
  lora: { r: 4, lora_alpha: 32, target_modules: ["c_attn"], lora_dropout: 0.1, fan_in_fan_out: true },
  "lora-all-linear": { r: 8, lora_alpha: 32, target_modules: "all-linear", lora_dropout: 0.1, fan_in_fan_out: true },
} as const;

/**
 * The paper's Table 3 at small scale: the embedded base on E2E with no adaptation, with LoRA, or
 * fully fine-tuned, on the same examples in the same order for the same number of steps.
 */
export async function measureE2eQuality(params: QualityParams): Promise<QualityResult> {
  await selectEngine();
  const model = await loadModel(params.modelDir);
  const tokenizer = await loadTokenizer(params.modelDir, model.config);
  if (!tokenizer || tokenizer.eosTokenId === undefined)
    throw new Error(`${params.modelDir}: the quality benchmark needs tokenizer.json with an end-of-text token`);
  const eos = tokenizer.eosTokenId;
  const { train, held } = splitE2e(loadE2e(params.e2eFile));
  const encode = (text: string): number[] => [...tokenizer.encode(text), eos].slice(0, 128);
  const trainExamples = train.flatMap((g) => g.refs.map((r) => ({ ids: encode(e2eExample(g.mr, r)) })));
  const heldOut = held.slice(0, params.evalMrs);
  const evalExamples = heldOut.flatMap((g) => g.refs.slice(0, 3).map((r) => ({ ids: encode(e2eExample(g.mr, r)) })));
  const lora = QUALITY_LORA[params.method === "lora-all-linear" ? "lora-all-linear" : "lora"];
  const training =
    params.method === "full"
      ? createFullTraining(model)
      : createLoraTraining(
          model,
          createLoraConfig({
            ...lora,
            target_modules: typeof lora.target_modules === "string" ? lora.target_modules : [...lora.target_modules],
            task_type: "CAUSAL_LM",
          }),
          { seed: params.seed },
        );
  const trainer = new Trainer(model, training, trainExamples, {
    task: "causal-lm",
    steps: params.steps,
    learningRate: params.learningRate,
    batchSize: params.batchSize,
    warmupSteps: Math.min(8, Math.floor(params.steps / 10)),
    schedule: "linear",
    weightDecay: 0.01,
    maxGradNorm: 1,
    seed: params.seed,
    padTokenId: eos,
  });
  const losses: number[] = [];
  const start = performance.now();
  if (params.method !== "none") for (let i = 0; i < params.steps; i++) losses.push(trainer.trainStep().loss);
  const trainSeconds = (performance.now() - start) / 1000;
  const evaluation = trainer.evaluate(evalExamples, 16);
  const outputs = heldOut.map((g) => {
    const ids = generate(model, tokenizer.encode(e2ePrompt(g.mr)), { maxNewTokens: params.maxNewTokens, eosTokenId: eos });
    return tokenizer.decode(ids.filter((id) => id !== eos)).trim();
  });
  return {
    method: params.method,
    trainable_parameters: params.method === "none" ? 0 : training.parameterCount,
    total_parameters: await checkpointParameterCount(params.modelDir),
    steps: params.method === "none" ? 0 : params.steps,
    learning_rate: params.learningRate,
    eval_loss: evaluation.loss,
    perplexity: evaluation.perplexity,
    bleu: corpusBleu(
      outputs,
      heldOut.map((g) => g.refs),
    ),
    train_seconds: trainSeconds,
    losses,
    samples: heldOut.slice(0, 3).map((g, i) => ({ mr: g.mr, output: outputs[i]! })),
  };
}
