import type { WriteStream } from "node:fs";
import { open, rename, rm } from "node:fs/promises";
import cliProgress from "cli-progress";
import { LowrankError, type LoraConfigInput, type TrainEvent, type TrainParams } from "@lowrank/core";
import type { CliContext } from "../cli-context.js";
import { choiceFlag, listFlag, numberFlag } from "./parse-flags.js";

export interface TrainOptions {
  model: string;
  data: string;
  out: string;
  task?: string;
  rank?: string;
  alpha?: string;
  targetModules?: string;
  dropout?: string;
  useDora?: boolean;
  useRslora?: boolean;
  init?: string;
  steps?: string;
  epochs?: string;
  lr?: string;
  batchSize?: string;
  gradAccum?: string;
  seqLen?: string;
  packing?: boolean;
  gradientCheckpointing?: boolean;
  warmup?: string;
  schedule?: string;
  weightDecay?: string;
  maxGradNorm?: string;
  seed?: string;
  evalData?: string;
  evalEvery?: string;
  saveEvery?: string;
  resume?: string;
  log?: string;
  full?: boolean;
  backend?: string;
  json?: boolean;
}

function parseInit(text: string | undefined): boolean | string | undefined {
  if (text === undefined) return undefined;
  if (text === "true") return true;
  if (text === "false") return false;
  return text;
}

/** Turns the flags into TrainParams, checking each. */
export function trainParams(o: TrainOptions): TrainParams {
  if (o.steps !== undefined && o.epochs !== undefined) throw new LowrankError("USAGE", "give --steps or --epochs, not both");
  const targets = listFlag(o.targetModules);
  const lora: LoraConfigInput = {
    ...(o.rank !== undefined ? { r: numberFlag("--rank", o.rank, { integer: true, min: 1 }) } : {}),
    ...(o.alpha !== undefined ? { lora_alpha: numberFlag("--alpha", o.alpha, { min: 0 }) } : {}),
    ...(targets ? { target_modules: targets.length === 1 && targets[0] === "all-linear" ? "all-linear" : targets } : {}),
    ...(o.dropout !== undefined ? { lora_dropout: numberFlag("--dropout", o.dropout, { min: 0, max: 1 }) } : {}),
    ...(o.useDora ? { use_dora: true } : {}),
    ...(o.useRslora ? { use_rslora: true } : {}),
    ...(o.init !== undefined ? { init_lora_weights: parseInit(o.init) } : {}),
  };
  return {
    model: o.model,
    data: o.data,
    out: o.out,
    task: choiceFlag("--task", o.task, ["causal-lm", "seq-cls"] as const),
    lora,
    full: o.full,
    steps: numberFlag("--steps", o.steps, { integer: true, min: 1 }),
    epochs: numberFlag("--epochs", o.epochs, { min: 0.01 }),
    learningRate: numberFlag("--lr", o.lr, { min: 0 }),
    batchSize: numberFlag("--batch-size", o.batchSize, { integer: true, min: 1 }),
    gradientAccumulation: numberFlag("--grad-accum", o.gradAccum, { integer: true, min: 1 }),
    seqLen: numberFlag("--seq-len", o.seqLen, { integer: true, min: 2 }),
    ...(o.packing ? { packing: true } : {}),
    ...(o.gradientCheckpointing === undefined ? {} : { gradientCheckpointing: o.gradientCheckpointing }),
    warmupSteps: numberFlag("--warmup", o.warmup, { integer: true, min: 0 }),
    schedule: choiceFlag("--schedule", o.schedule, ["constant", "linear", "cosine"] as const),
    weightDecay: numberFlag("--weight-decay", o.weightDecay, { min: 0 }),
    maxGradNorm: numberFlag("--max-grad-norm", o.maxGradNorm, { min: 0 }),
    seed: numberFlag("--seed", o.seed, { integer: true, min: 0 }),
    evalData: o.evalData,
    evalEvery: numberFlag("--eval-every", o.evalEvery, { integer: true, min: 1 }),
    saveEvery: numberFlag("--save-every", o.saveEvery, { integer: true, min: 1 }),
    resume: o.resume,
  };
}

function logLine(event: TrainEvent): Record<string, unknown> | undefined {
  switch (event.type) {
    case "step":
      return {
        step: event.step,
        epoch: event.epoch,
        loss: event.loss,
        lr: event.learningRate,
        grad_norm: event.gradNorm,
        tokens: event.tokens,
        tokens_per_second: event.tokensPerSecond,
        seconds: event.seconds,
      };
    case "eval":
      return { step: event.step, eval_loss: event.loss, perplexity: event.perplexity, ...(event.accuracy !== undefined ? { accuracy: event.accuracy } : {}) };
    default:
      return undefined;
  }
}

/** `lowrank train`: trains LoRA (or, with --full, every parameter) and writes a PEFT adapter folder. */
export async function trainCommand(ctx: CliContext, options: TrainOptions): Promise<void> {
  const parsed = trainParams(options);
  // The adapter records the model as the user named it (a Hub id stays a Hub id), as PEFT does.
  const params = { ...parsed, model: await ctx.local(options.model), lora: { base_model_name_or_path: options.model, ...parsed.lora } };
  const { backend, declined } = await (await ctx.registry()).resolveFor("train", options.backend, params.model, params);
  const partialLog = options.log ? `${options.log}.partial` : undefined;
  let logStream: WriteStream | undefined;
  if (partialLog) {
    // Open first, so a bad path is a usage error before any training starts.
    const handle = await open(partialLog, "w").catch((error: NodeJS.ErrnoException) => {
      throw new LowrankError("USAGE", `--log ${options.log}: cannot write (${error.code ?? error.message})`);
    });
    // The stream owns the handle (closing it once): a bare fd would also be closed when the handle is collected.
    logStream = handle.createWriteStream();
  }
  const tty = process.stderr.isTTY && !options.json;
  const bar = tty
    ? new cliProgress.SingleBar(
        { format: "train |{bar}| {value}/{total} steps | loss {loss} | {tps} tok/s | ETA {eta_formatted}", hideCursor: true },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  let lastPrinted = 0;
  let summary: Extract<TrainEvent, { type: "done" }> | undefined;
  let start: Extract<TrainEvent, { type: "start" }> | undefined;
  let lastEval: Extract<TrainEvent, { type: "eval" }> | undefined;
  try {
    for await (const event of backend.train!(params)) {
      const line = logLine(event);
      if (line && logStream) logStream.write(`${JSON.stringify(line)}\n`);
      if (event.type === "start") {
        start = event;
        ctx.logger.info(
          `training ${options.full ? "all" : "LoRA"} parameters: ${event.trainableParameters.toLocaleString("en-US")} of ` +
            `${event.totalParameters.toLocaleString("en-US")} (${((100 * event.trainableParameters) / event.totalParameters).toFixed(3)}%) on ` +
            `${event.device}, ${event.examples} examples, ${event.totalSteps} steps`,
        );
        bar?.start(event.totalSteps, event.startStep, { loss: "-", tps: "-" });
      } else if (event.type === "step") {
        if (bar) bar.update(event.step, { loss: event.loss.toFixed(4), tps: Math.round(event.tokensPerSecond) });
        else if (!options.json && (event.step - lastPrinted >= Math.max(1, Math.round((start?.totalSteps ?? 10) / 10)) || event.step === start?.totalSteps)) {
          lastPrinted = event.step;
          ctx.logger.info(
            `step ${event.step}/${start?.totalSteps ?? "?"}  loss ${event.loss.toFixed(4)}  lr ${event.learningRate.toExponential(2)}  ` +
              `${Math.round(event.tokensPerSecond)} tok/s`,
          );
        }
      } else if (event.type === "eval") {
        lastEval = event;
        if (!bar && !options.json)
          ctx.logger.info(
            `eval at step ${event.step}: loss ${event.loss.toFixed(4)}, perplexity ` +
              `${event.perplexity.toFixed(2)}${event.accuracy !== undefined ? `, accuracy ${(100 * event.accuracy).toFixed(1)}%` : ""}`,
          );
      } else if (event.type === "checkpoint") {
        if (!bar && !options.json) ctx.logger.info(`checkpoint at step ${event.step}: ${event.dir}`);
      } else if (event.type === "done") {
        summary = event;
      }
    }
    bar?.stop();
    if (logStream) {
      await new Promise<void>((resolve, reject) => logStream!.end((error?: Error | null) => (error ? reject(error) : resolve())));
      logStream = undefined;
      await rename(partialLog!, options.log!);
    }
  } catch (error) {
    bar?.stop();
    logStream?.destroy();
    if (partialLog) await rm(partialLog, { force: true });
    throw error;
  }
  const result = {
    out: options.out,
    backend: backend.name,
    // Why a backend of higher priority did not take the run (ONNX Runtime's trainer lacks DoRA, say).
    ...(declined ? { declined: Object.fromEntries(declined.map((d) => [d.name, d.reason])) } : {}),
    steps: summary?.steps,
    final_loss: summary?.finalLoss,
    seconds: summary?.seconds,
    trainable_parameters: start?.trainableParameters,
    total_parameters: start?.totalParameters,
    ...(lastEval
      ? { eval_loss: lastEval.loss, perplexity: lastEval.perplexity, ...(lastEval.accuracy !== undefined ? { accuracy: lastEval.accuracy } : {}) }
      : {}),
  };
  if (options.json) ctx.out(JSON.stringify(result, null, 2));
  else
    ctx.out(
      `trained ${summary?.steps} steps in ${summary?.seconds.toFixed(1)} s, final loss ` +
        `${summary?.finalLoss.toFixed(4)}${lastEval ? `, eval loss ${lastEval.loss.toFixed(4)}` : ""}; wrote ` +
        `${options.full ? "the full checkpoint" : "the PEFT adapter"} to ${options.out}`,
    );
}
