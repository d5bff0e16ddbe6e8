import path from "node:path";
import type { TrainEvent, TrainParams } from "../backend/backend.js";
import { ensure, LowrankError } from "../errors/lowrank-error.js";
import type { TrainingExample } from "./batches.js";
import { readExamples } from "./read-examples.js";
import type { StepLog } from "./trainer-types.js";
import { restoreTrainingCheckpoint, saveTrainingCheckpoint } from "./training-checkpoint.js";
import type { BackendTrainer, PrepareTrainingStepper, TrainingDataFormat } from "./training-stepper.js";
import { trainingSummaryText, TRAINING_SUMMARY_FILE } from "./training-summary.js";
import { writeTrainedWeights } from "./write-trained-weights.js";

type EvalEvent = Extract<TrainEvent, { type: "eval" }>;

/** The message of a run stopped by a non-finite loss or gradient norm. */
function divergedMessage(entry: StepLog, lastCheckpoint: string | undefined): string {
  const checkpoint = lastCheckpoint
    ? `the last good checkpoint is ${lastCheckpoint} (continue with --resume ${lastCheckpoint})`
    : "no checkpoint was saved before it (use --save-every N)";
  return (
    `training diverged at step ${entry.step}: loss ${entry.loss}, gradient norm ${entry.gradNorm} (lower --lr or set --max-grad-norm); ` +
    `${checkpoint}; no adapter was written`
  );
}

async function evaluate(trainer: BackendTrainer, examples: readonly TrainingExample[] | undefined, step: number): Promise<EvalEvent | undefined> {
  if (!examples) return undefined;
  const r = await trainer.evaluate(examples);
  return { type: "eval", step, loss: r.loss, perplexity: r.perplexity, ...(r.accuracy !== undefined ? { accuracy: r.accuracy } : {}) };
}

/**
 * A whole training run on any backend, as a stream of events: `prepare` loads the backend's model
 * and builds its stepper (reading the data through core's readExamples); the run resumes from
 * `params.resume`, trains to the last step with evaluations every `evalEvery` steps and resumable
 * checkpoints in `out/checkpoint-N` every `saveEvery` steps, then evaluates once more and writes the
 * PEFT adapter folder (or full checkpoint) to `out` with training_summary.json.
 *
 * Events, in order: start; for each step, step (then eval, then checkpoint, when due); a final eval
 * when there is eval data; done. The stepper is released at the end, whether the run ends or fails.
 * @param options.backend the backend's name, recorded in training_summary.json.
 * @returns the events, as an async generator the caller drains.
 * @throws LowrankError TRAINING_DIVERGED when a step's loss or gradient norm is not finite (nothing is
 * written for that step; earlier checkpoints stay), and what `prepare` and the stepper throw.
 * @example
 * for await (const event of runTraining(prepareMyBackend(), { model, data, out, steps: 100 }, { backend: "mine" })) log(event);
 */
export async function* runTraining(prepare: PrepareTrainingStepper, params: TrainParams, options: { backend: string }): AsyncGenerator<TrainEvent> {
  const started = performance.now();
  const seconds = () => (performance.now() - started) / 1000;
  const seed = params.seed ?? 42;
  let examples: TrainingExample[] | undefined;
  let evalExamples: TrainingExample[] | undefined;
  const readData = async (format: TrainingDataFormat): Promise<TrainingExample[]> => {
    const read = (file: string) =>
      readExamples(file, {
        task: format.task,
        tokenizer: format.tokenizerFor?.(file),
        seqLen: params.seqLen ?? 128,
        vocabSize: format.vocabSize,
        eosTokenId: format.eosTokenId,
        // Training data is packed when asked; evaluation data is read as it is.
        packing: params.packing === true && file === params.data,
      });
    examples = await read(params.data);
    evalExamples = params.evalData ? await read(params.evalData) : undefined;
    return examples;
  };
  const stepper = await prepare({ params, seed, readData });
  try {
    const { trainer } = stepper;
    ensure(examples, "BACKEND_INVALID", () => `the ${options.backend} backend prepared a training run without reading its data (readData)`);
    let log: StepLog[] = params.resume ? await restoreTrainingCheckpoint(params.resume, stepper) : [];
    yield {
      type: "start",
      totalSteps: trainer.totalSteps,
      startStep: trainer.currentStep,
      trainableParameters: stepper.trainableParameters,
      totalParameters: stepper.totalParameters,
      examples: examples.length,
      device: stepper.device,
    };
    let lastCheckpoint = params.resume;
    while (trainer.currentStep < trainer.totalSteps) {
      const entry = await trainer.trainStep();
      // A non-finite loss or gradient poisons this step's update: stop before anything is saved, so
      // the checkpoints on disk (all from earlier, finite steps) stay the last good state.
      if (!Number.isFinite(entry.loss) || !Number.isFinite(entry.gradNorm)) throw new LowrankError("TRAINING_DIVERGED", divergedMessage(entry, lastCheckpoint));
      log = [...log, entry];
      yield { type: "step", ...entry };
      const due = (every: number | undefined) => !!every && entry.step % every === 0 && entry.step < trainer.totalSteps;
      if (due(params.evalEvery)) {
        const e = await evaluate(trainer, evalExamples, entry.step);
        if (e) yield e;
      }
      if (due(params.saveEvery)) {
        const dir = path.join(params.out, `checkpoint-${entry.step}`);
        await saveTrainingCheckpoint(dir, stepper, { seed, log, baseDir: params.model });
        lastCheckpoint = dir;
        yield { type: "checkpoint", step: entry.step, dir };
      }
      // A backend's step may not wait on anything: let timers and I/O (signals, log writes) run between steps.
      await new Promise((resolve) => setImmediate(resolve));
    }
    const finalEval = await evaluate(trainer, evalExamples, trainer.currentStep);
    if (finalEval) yield finalEval;
    const summary = trainingSummaryText({
      params,
      seed,
      log,
      finalEval,
      trainableParameters: stepper.trainableParameters,
      totalParameters: stepper.totalParameters,
      seconds: seconds(),
      device: stepper.device,
      backend: options.backend,
    });
    await writeTrainedWeights(params.out, stepper.weights({ checkpoint: false }), {
      baseDir: params.model,
      files: { [TRAINING_SUMMARY_FILE]: summary },
      removeStaleWeights: true,
    });
    yield { type: "done", out: params.out, steps: trainer.currentStep, seconds: seconds(), finalLoss: log.at(-1)?.loss ?? NaN };
  } finally {
    await stepper.release();
  }
}
