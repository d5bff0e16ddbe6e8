import { readFile } from "node:fs/promises";
import path from "node:path";
import { loadTokenizer, LowrankError, type Logger } from "@lowrank/core";
import { trainerOptionsFor, type PrepareTrainingStepper } from "@lowrank/core/internal";
import type { ExecutionProvider } from "../session/ort-session.js";
import { createOnnxFullTraining } from "./create-onnx-full-training.js";
import { createOnnxLoraTraining } from "./create-onnx-lora-training.js";
import { onnxFullStepper, onnxStepper } from "./onnx-stepper.js";
import { OnnxLoraTrainer } from "./onnx-trainer.js";
import { chooseRecompute } from "./recompute-choice.js";

export interface OnnxTrainingOptions {
  logger: Logger;
  executionProvider?: ExecutionProvider;
  threads?: number;
}

const intOf = (v: unknown): number | undefined =>
  typeof v === "number" && Number.isInteger(v) ? v : Array.isArray(v) && Number.isInteger(v[0]) ? (v[0] as number) : undefined;

/** A classifier's label count as transformers reads config.json: `num_labels`, else `id2label`'s size, else 2. */
function labelCount(config: Record<string, unknown>): number {
  if (typeof config.num_labels === "number") return config.num_labels;
  const names = config.id2label;
  return names && typeof names === "object" ? Object.keys(names).length : 2;
}

/**
 * How ONNX Runtime prepares a training run for core's runTraining: builds the loss-and-gradients
 * graph of the Hugging Face model in `params.model` with the new adapter's factors (or, with `full`,
 * every parameter of the model), opens its session, reads the data (text through the folder's
 * tokenizer) and creates the trainer. The task is `--task`, else the model type's: sequence
 * classification on BERT / RoBERTa / XLM-R / DeBERTa-v2 (the classifier trained whole, as on the tfjs backend),
 * causal LM on the decoders.
 * @returns the preparation; it throws LowrankError CHECKPOINT_INVALID when config.json has no
 * `vocab_size`, USAGE for a label the classifier lacks, and what createOnnxLoraTraining /
 * createOnnxFullTraining throw.
 */
export function prepareOnnxTraining(options: OnnxTrainingOptions): PrepareTrainingStepper {
  return async ({ params, seed, readData }) => {
    const session = { executionProvider: options.executionProvider, threads: options.threads, logger: options.logger };
    // config.json's block shape decides recomputation when the run does not say (an unreadable one is the builders' to report).
    const modelConfig: unknown = await readFile(path.join(params.model, "config.json"), "utf8")
      .then((text) => JSON.parse(text))
      .catch(() => undefined);
    const recompute = chooseRecompute(params.gradientCheckpointing, {
      config: modelConfig && typeof modelConfig === "object" ? (modelConfig as Record<string, unknown>) : {},
      batch: params.batchSize ?? 8,
      seq: params.seqLen ?? 128,
      logger: options.logger,
    });
    const graph = { model: params.model, task: params.task, packed: params.packing, recompute, ...session };
    const training = params.full
      ? { kind: "full" as const, run: await createOnnxFullTraining(graph) }
      : { kind: "lora" as const, run: await createOnnxLoraTraining({ ...graph, lora: params.lora, seed }) };
    try {
      const config = training.run.modelConfig;
      const vocabSize = intOf(config.vocab_size);
      if (vocabSize === undefined) throw new LowrankError("CHECKPOINT_INVALID", `${params.model}: config.json has no \`vocab_size\``);
      // Text goes through the model folder's tokenizer, core's, as on the tfjs backend.
      const tokenizer = await loadTokenizer(params.model, config);
      const eos = tokenizer?.eosTokenId ?? intOf(config.eos_token_id);
      const task = training.run.task;
      const examples = await readData({ task, tokenizerFor: () => tokenizer, vocabSize, eosTokenId: eos });
      const trainerOptions = trainerOptionsFor(params, {
        task,
        seed,
        // As the tfjs trainer: a classifier pads with config.json's pad token (the mask hides it).
        padTokenId: task === "seq-cls" ? (intOf(config.pad_token_id) ?? 0) : (tokenizer?.padTokenId ?? intOf(config.pad_token_id) ?? eos ?? 0),
      });
      const numLabels = task === "seq-cls" ? labelCount(config) : undefined;
      if (training.kind === "full") {
        const full = training.run;
        return onnxFullStepper(full, new OnnxLoraTrainer(full.session, [], full.params, examples, trainerOptions, { parameters: full.parameters, numLabels }));
      }
      const lora = training.run;
      const extras = { dropout: lora.config.lora_dropout, parameters: lora.parameters, numLabels };
      return onnxStepper(lora, new OnnxLoraTrainer(lora.session, lora.slots, lora.params, examples, trainerOptions, extras));
    } catch (error) {
      await training.run.release();
      throw error;
    }
  };
}
