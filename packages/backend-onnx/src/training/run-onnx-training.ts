import path from "node:path";
import { LowrankError, readExamples, trainerOptionsFor, trainingSummaryText, TRAINING_SUMMARY_FILE, writeAdapter, type Logger, type StepLog, type TrainEvent, type TrainParams, type TrainingExample } from "@lowrank/core";
import type { ExecutionProvider } from "../session/ort-session.js";
import { createOnnxLoraTraining, type OnnxLoraTraining } from "./create-onnx-lora-training.js";
import { restoreOnnxCheckpoint, saveOnnxCheckpoint } from "./onnx-checkpoint.js";
import { OnnxLoraTrainer } from "./onnx-trainer.js";

export interface OnnxTrainingOptions {
  logger: Logger;
  executionProvider?: ExecutionProvider;
  threads?: number;
}

/** Text lines need a tokenizer, which this backend does not carry: say what to do instead. */
const noTokenizer = (file: string) => ({
  encode(): number[] {
    throw new LowrankError("USAGE", `--data ${file}: has text, but the onnx trainer reads tokenised data only; give JSONL lines with \`input_ids\` or use --backend tfjs`);
  },
});

const intOf = (v: unknown): number | undefined => (typeof v === "number" && Number.isInteger(v) ? v : Array.isArray(v) && Number.isInteger(v[0]) ? (v[0] as number) : undefined);

/**
 * A LoRA training run on ONNX Runtime, as the same stream of events as the tfjs backend's: builds the
 * loss-and-gradients graph of the Hugging Face model in `params.model`, trains with checkpoints and
 * evaluations, and writes a PEFT adapter folder to `out`. Each step event's `seconds` is the wall
 * time of that optimizer step (graph runs and the AdamW update).
 */
export async function* runOnnxTraining(params: TrainParams, options: OnnxTrainingOptions): AsyncGenerator<TrainEvent> {
  const started = performance.now();
  if (params.full) throw new LowrankError("USAGE", "--full: the onnx backend trains LoRA adapters only; use --backend tfjs for full fine-tuning");
  if (params.task === "seq-cls") throw new LowrankError("USAGE", "--task seq-cls: the onnx trainer trains causal language models only; use --backend tfjs");
  const seed = params.seed ?? 42;
  const training: OnnxLoraTraining = await createOnnxLoraTraining({
    model: params.model, lora: params.lora, seed, executionProvider: options.executionProvider, threads: options.threads, logger: options.logger,
  });
  try {
    const config = training.modelConfig;
    const vocabSize = intOf(config.vocab_size);
    if (vocabSize === undefined) throw new LowrankError("CHECKPOINT_INVALID", `${params.model}: config.json has no \`vocab_size\``);
    const eos = intOf(config.eos_token_id);
    const seqLen = params.seqLen ?? 128;
    const read = (file: string): Promise<TrainingExample[]> => readExamples(file, { task: "causal-lm", tokenizer: noTokenizer(file), seqLen, vocabSize, eosTokenId: eos });
    const examples = await read(params.data);
    const evalExamples = params.evalData ? await read(params.evalData) : undefined;
    const trainer = new OnnxLoraTrainer(training.session, training.slots, training.params, examples,
      trainerOptionsFor(params, { task: "causal-lm", seed, padTokenId: intOf(config.pad_token_id) ?? eos ?? 0 }), training.config.lora_dropout);
    let log: StepLog[] = params.resume ? await restoreOnnxCheckpoint(params.resume, trainer) : [];
    const device = training.provider;
    yield {
      type: "start", totalSteps: trainer.totalSteps, startStep: trainer.currentStep, trainableParameters: training.trainableParameters,
      totalParameters: training.totalParameters, examples: examples.length, device,
    };
    const evaluate = async (step: number): Promise<Extract<TrainEvent, { type: "eval" }> | undefined> => {
      if (!evalExamples) return undefined;
      const r = await trainer.evaluate(evalExamples);
      return { type: "eval", step, loss: r.loss, perplexity: r.perplexity };
    };
    let lastCheckpoint = params.resume;
    while (trainer.currentStep < trainer.totalSteps) {
      const entry = await trainer.trainStep();
      // A non-finite loss or gradient poisons this step's update: stop before anything is saved.
      if (!Number.isFinite(entry.loss) || !Number.isFinite(entry.gradNorm)) {
        throw new LowrankError("TRAINING_DIVERGED", `training diverged at step ${entry.step}: loss ${entry.loss}, gradient norm ${entry.gradNorm} (lower --lr or set --max-grad-norm); ${lastCheckpoint ? `the last good checkpoint is ${lastCheckpoint} (continue with --resume ${lastCheckpoint})` : "no checkpoint was saved before it (use --save-every N)"}; no adapter was written`);
      }
      log = [...log, entry];
      yield { type: "step", ...entry };
      if (params.evalEvery && entry.step % params.evalEvery === 0 && entry.step < trainer.totalSteps) {
        const e = await evaluate(entry.step);
        if (e) yield e;
      }
      if (params.saveEvery && entry.step % params.saveEvery === 0 && entry.step < trainer.totalSteps) {
        const dir = path.join(params.out, `checkpoint-${entry.step}`);
        await saveOnnxCheckpoint({ dir, adapter: training.adapter(), trainer, seed, log });
        lastCheckpoint = dir;
        yield { type: "checkpoint", step: entry.step, dir };
      }
    }
    const finalEval = await evaluate(trainer.currentStep);
    if (finalEval) yield finalEval;
    const summary = trainingSummaryText({
      params, seed, log, finalEval, trainableParameters: training.trainableParameters, totalParameters: training.totalParameters,
      seconds: (performance.now() - started) / 1000, device, backend: "onnx",
    });
    await writeAdapter(params.out, training.adapter(), { [TRAINING_SUMMARY_FILE]: summary });
    yield { type: "done", out: params.out, steps: trainer.currentStep, seconds: (performance.now() - started) / 1000, finalLoss: log.at(-1)?.loss ?? NaN };
  } finally {
    await training.release();
  }
}
