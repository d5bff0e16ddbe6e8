import path from "node:path";
import { copyModelFiles, createLoraConfig, LowrankError, trainerOptionsFor, trainingSummaryText, TRAINING_SUMMARY_FILE, WEIGHT_FILE, writeAdapter, writeDirectoryAtomic, writeFileAtomic, writeSafetensors, type Logger, type TrainEvent, type TrainParams } from "@lowrank/core";
import { readExamples, type Example } from "../data/read-examples.js";
import { loadTokenizer } from "../data/tokenizer.js";
import { loadModel } from "../models/load-model.js";
import type { TfjsModel } from "../models/model.js";
import { restoreCheckpoint, saveCheckpoint } from "./checkpoint.js";
import { createFullTraining, createLoraTraining, type FullTraining, type LoraTraining } from "./trainable.js";
import { Trainer, type StepLog } from "./trainer.js";

/** PEFT's task_type for each task. */
const TASK_TYPES = { "causal-lm": "CAUSAL_LM", "seq-cls": "SEQ_CLS" } as const;

function totalParameters(model: TfjsModel): number {
  return model.store.keys().reduce((n, k) => n + model.store.get(k).size, 0);
}

function padTokenFor(model: TfjsModel, task: "causal-lm" | "seq-cls", tokenizerPad?: number): number {
  const configPad = typeof model.config.pad_token_id === "number" ? model.config.pad_token_id : undefined;
  if (task === "seq-cls") return configPad ?? 0;
  return tokenizerPad ?? configPad ?? model.eosTokenId ?? 0;
}

/**
 * A whole training run on TensorFlow.js, as a stream of events: loads the model and data, creates
 * the LoRA adapter (or makes every parameter trainable with `full`), trains with checkpoints and
 * evaluations, and writes a PEFT adapter folder (or a full checkpoint) to `out`.
 */
export async function* runTraining(params: TrainParams, options: { logger: Logger; device: string }): AsyncGenerator<TrainEvent> {
  const started = performance.now();
  const model = await loadModel(params.model);
  let trainer: Trainer | undefined;
  try {
    const task = params.task ?? model.task;
    if (task !== model.task) throw new LowrankError("USAGE", `--task ${task} does not fit ${params.model}, which is a ${model.task} model`);
    const tokenizer = await loadTokenizer(params.model, model.config);
    const seqLen = params.seqLen ?? 128;
    const read = (file: string): Promise<Example[]> => readExamples(file, { task, tokenizer, seqLen, vocabSize: model.vocabSize, eosTokenId: tokenizer?.eosTokenId ?? model.eosTokenId });
    const examples = await read(params.data);
    const evalExamples = params.evalData ? await read(params.evalData) : undefined;
    const seed = params.seed ?? 42;
    let trainable: LoraTraining | FullTraining;
    if (params.full) {
      trainable = createFullTraining(model);
    } else {
      const config = createLoraConfig({
        task_type: TASK_TYPES[task],
        base_model_name_or_path: params.model,
        // GPT-2-style Conv1D weights are stored input by output: say so, as PEFT users must.
        fan_in_fan_out: model.description.modules.some((m) => m.kind === "conv1d"),
        ...(task === "seq-cls" ? { modules_to_save: ["classifier", "score"] } : {}),
        ...params.lora,
      });
      trainable = createLoraTraining(model, config, { seed, logger: options.logger });
    }
    trainer = new Trainer(model, trainable, examples, trainerOptionsFor(params, { task, seed, padTokenId: padTokenFor(model, task, tokenizer?.padTokenId) }));
    let log: StepLog[] = params.resume ? await restoreCheckpoint(params.resume, trainable, trainer) : [];
    yield {
      type: "start", totalSteps: trainer.totalSteps, startStep: trainer.currentStep, trainableParameters: trainable.parameterCount,
      totalParameters: totalParameters(model), examples: examples.length, device: options.device,
    };
    const evaluate = (step: number): TrainEvent | undefined => {
      if (!evalExamples) return undefined;
      const r = trainer!.evaluate(evalExamples);
      return { type: "eval", step, loss: r.loss, perplexity: r.perplexity, ...(r.accuracy !== undefined ? { accuracy: r.accuracy } : {}) };
    };
    let lastCheckpoint = params.resume;
    while (trainer.currentStep < trainer.totalSteps) {
      const entry = trainer.trainStep();
      // A non-finite loss or gradient poisons this step's update: stop before anything is saved, so
      // the checkpoints on disk (all from earlier, finite steps) stay the last good state.
      if (!Number.isFinite(entry.loss) || !Number.isFinite(entry.gradNorm)) {
        throw new LowrankError("TRAINING_DIVERGED", `training diverged at step ${entry.step}: loss ${entry.loss}, gradient norm ${entry.gradNorm} (lower --lr or set --max-grad-norm); ${lastCheckpoint ? `the last good checkpoint is ${lastCheckpoint} (continue with --resume ${lastCheckpoint})` : "no checkpoint was saved before it (use --save-every N)"}; no adapter was written`);
      }
      log = [...log, entry];
      yield { type: "step", ...entry };
      if (params.evalEvery && entry.step % params.evalEvery === 0 && entry.step < trainer.totalSteps) {
        const e = evaluate(entry.step);
        if (e) yield e;
      }
      if (params.saveEvery && entry.step % params.saveEvery === 0 && entry.step < trainer.totalSteps) {
        const dir = path.join(params.out, `checkpoint-${entry.step}`);
        await saveCheckpoint({ dir, trainable, trainer, seed, log, baseDir: params.model });
        lastCheckpoint = dir;
        yield { type: "checkpoint", step: entry.step, dir };
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
    const finalEval = evaluate(trainer.currentStep);
    if (finalEval) yield finalEval;
    const summaryText = trainingSummaryText({
      params, seed, log, finalEval: finalEval?.type === "eval" ? finalEval : undefined, trainableParameters: trainable.parameterCount,
      totalParameters: totalParameters(model), seconds: (performance.now() - started) / 1000, device: options.device, backend: "tfjs",
    });
    if (trainable.kind === "lora") {
      await writeAdapter(params.out, trainable.exportAdapter(), { [TRAINING_SUMMARY_FILE]: summaryText });
    } else {
      const tensors = trainable.exportTensors();
      await writeDirectoryAtomic(params.out, async (temp) => {
        await writeSafetensors(path.join(temp, "model.safetensors"), tensors, { format: "pt" });
        await copyModelFiles(params.model, temp);
        await writeFileAtomic(path.join(temp, TRAINING_SUMMARY_FILE), summaryText);
      }, { removeStale: WEIGHT_FILE });
    }
    yield { type: "done", out: params.out, steps: trainer.currentStep, seconds: (performance.now() - started) / 1000, finalLoss: log.at(-1)?.loss ?? NaN };
  } finally {
    trainer?.dispose();
    model.store.dispose();
  }
}
