import { createLoraConfig, LowrankError, type Logger } from "@lowrank/core";
import { trainerOptionsFor, type PrepareTrainingStepper } from "@lowrank/core/internal";
import { loadTokenizer } from "@lowrank/core";
import { loadModel } from "../models/load-model.js";
import type { TfjsModel } from "../models/model.js";
import { tfjsStepper } from "./tfjs-stepper.js";
import { createFullTraining, createLoraTraining } from "./trainable.js";
import { Trainer } from "./trainer.js";

/** PEFT's task_type for each task. */
const TASK_TYPES = { "causal-lm": "CAUSAL_LM", "seq-cls": "SEQ_CLS" } as const;

function padTokenFor(model: TfjsModel, task: "causal-lm" | "seq-cls", tokenizerPad?: number): number {
  const configPad = typeof model.config.pad_token_id === "number" ? model.config.pad_token_id : undefined;
  if (task === "seq-cls") return configPad ?? 0;
  return tokenizerPad ?? configPad ?? model.eosTokenId ?? 0;
}

/**
 * How TensorFlow.js prepares a training run for core's runTraining: loads a fresh copy of the model
 * and its tokenizer, reads the data, creates the LoRA adapter (or, with `full`, makes every
 * parameter trainable) and its Trainer.
 * @returns the preparation; it throws LowrankError USAGE when `--task` does not fit the model, and
 * what loading, targeting and the Trainer throw.
 */
export function prepareTfjsTraining(options: { logger: Logger; device: string }): PrepareTrainingStepper {
  return async ({ params, seed, readData }) => {
    if (params.gradientCheckpointing)
      options.logger.warn("gradient checkpointing: the tfjs backend holds every activation (its autodiff records them); --backend onnx recomputes them");
    const model = await loadModel(params.model);
    try {
      const task = params.task ?? model.task;
      if (task !== model.task) throw new LowrankError("USAGE", `--task ${task} does not fit ${params.model}, which is a ${model.task} model`);
      const tokenizer = await loadTokenizer(params.model, model.config);
      const examples = await readData({
        task,
        tokenizerFor: () => tokenizer,
        vocabSize: model.vocabSize,
        eosTokenId: tokenizer?.eosTokenId ?? model.eosTokenId,
      });
      const trainable = params.full
        ? createFullTraining(model)
        : createLoraTraining(
            model,
            createLoraConfig({
              task_type: TASK_TYPES[task],
              base_model_name_or_path: params.model,
              // GPT-2-style Conv1D weights are stored input by output: say so, as PEFT users must.
              fan_in_fan_out: model.description.modules.some((m) => m.kind === "conv1d"),
              ...(task === "seq-cls" ? { modules_to_save: ["classifier", "score"] } : {}),
              ...params.lora,
            }),
            { seed, logger: options.logger },
          );
      const trainer = new Trainer(
        model,
        trainable,
        examples,
        trainerOptionsFor(params, { task, seed, padTokenId: padTokenFor(model, task, tokenizer?.padTokenId) }),
      );
      return tfjsStepper({ model, trainable, trainer, device: options.device });
    } catch (error) {
      model.store.dispose();
      throw error;
    }
  };
}
