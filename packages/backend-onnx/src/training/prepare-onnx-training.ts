import { loadTokenizer, LowrankError, type Logger } from "@lowrank/core";
import { trainerOptionsFor, type PrepareTrainingStepper } from "@lowrank/core/internal";
import type { ExecutionProvider } from "../session/ort-session.js";
import { createOnnxFullTraining } from "./create-onnx-full-training.js";
import { createOnnxLoraTraining } from "./create-onnx-lora-training.js";
import { onnxFullStepper, onnxStepper } from "./onnx-stepper.js";
import { OnnxLoraTrainer } from "./onnx-trainer.js";

export interface OnnxTrainingOptions {
  logger: Logger;
  executionProvider?: ExecutionProvider;
  threads?: number;
}

const intOf = (v: unknown): number | undefined =>
  typeof v === "number" && Number.isInteger(v) ? v : Array.isArray(v) && Number.isInteger(v[0]) ? (v[0] as number) : undefined;

/**
 * How ONNX Runtime prepares a training run for core's runTraining: builds the loss-and-gradients
 * graph of the Hugging Face model in `params.model` with the new adapter's factors (or, with `full`,
 * every parameter of the model), opens its session, reads the data (text through the folder's
 * tokenizer) and creates the trainer.
 * @returns the preparation; it throws LowrankError USAGE for `seq-cls` runs (use the tfjs backend),
 * CHECKPOINT_INVALID when config.json has no `vocab_size`, and what createOnnxLoraTraining /
 * createOnnxFullTraining throw.
 */
export function prepareOnnxTraining(options: OnnxTrainingOptions): PrepareTrainingStepper {
  return async ({ params, seed, readData }) => {
    if (params.task === "seq-cls") throw new LowrankError("USAGE", "--task seq-cls: the onnx trainer trains causal language models only; use --backend tfjs");
    const session = { executionProvider: options.executionProvider, threads: options.threads, logger: options.logger };
    const training = params.full
      ? { kind: "full" as const, run: await createOnnxFullTraining({ model: params.model, ...session }) }
      : { kind: "lora" as const, run: await createOnnxLoraTraining({ model: params.model, lora: params.lora, seed, ...session }) };
    try {
      const config = training.run.modelConfig;
      const vocabSize = intOf(config.vocab_size);
      if (vocabSize === undefined) throw new LowrankError("CHECKPOINT_INVALID", `${params.model}: config.json has no \`vocab_size\``);
      // Text goes through the model folder's tokenizer, core's, as on the tfjs backend.
      const tokenizer = await loadTokenizer(params.model, config);
      const eos = tokenizer?.eosTokenId ?? intOf(config.eos_token_id);
      const examples = await readData({ task: "causal-lm", tokenizerFor: () => tokenizer, vocabSize, eosTokenId: eos });
      const trainerOptions = trainerOptionsFor(params, {
        task: "causal-lm",
        seed,
        padTokenId: tokenizer?.padTokenId ?? intOf(config.pad_token_id) ?? eos ?? 0,
      });
      if (training.kind === "full") {
        const full = training.run;
        return onnxFullStepper(full, new OnnxLoraTrainer(full.session, [], full.params, examples, trainerOptions, 0, full.parameters));
      }
      const lora = training.run;
      return onnxStepper(lora, new OnnxLoraTrainer(lora.session, lora.slots, lora.params, examples, trainerOptions, lora.config.lora_dropout, lora.parameters));
    } catch (error) {
      await training.run.release();
      throw error;
    }
  };
}
