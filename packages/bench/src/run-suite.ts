import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { benchPlan, type BenchPlan } from "./bench-plan.js";
import type { BenchResults } from "./bench-results.js";
import type { WorkerJob } from "./bench-worker.js";
import { QUALITY_METHOD_LABELS, type QualityMethod, type QualityResult } from "./e2e-quality.js";
import { copyBandwidthGbPerS, decodeFloorTokensPerSecond } from "./decode-floor.js";
import { measureFootprint, ADAPTER_VARIANTS } from "./footprint.js";
import type { DecodeRow, GenerationRow } from "./generation-speed.js";
import type { LatencyRow } from "./inference-latency.js";
import type { MergeMemory } from "./merge-memory.js";
import type { MergeThroughput } from "./merge-throughput.js";
import { computeRatios, TARGETS } from "./ratios.js";
import { writeRandomGpt2 } from "./synthetic-model.js";
import type { TrainingStep } from "./training-step.js";
import { machineInfo, versionInfo } from "./environment.js";

export interface SuiteOptions {
  quick: boolean;
  /** The embedded base (Hugging Face GPT-2 folder with tokenizer.json). */
  modelDir: string;
  /** The E2E file for the quality table. */
  e2eFile: string;
  /** The lowrank version the results name (`lowrank bench` passes its own). */
  lowrankVersion: string;
  /**
   * The command that runs one measurement in a process of its own; the job's JSON is appended.
   * Default: this package's worker script (dist/worker.js) under the running Node.
   */
  workerCommand?: string[];
  log: (line: string) => void;
}

/** This package's worker script, beside the built module that runs the suite (dist/worker.js). */
function defaultWorkerCommand(): string[] {
  const script = fileURLToPath(new URL("./worker.js", import.meta.url));
  if (!existsSync(script)) throw new Error(`bench: the worker script ${script} is missing; build @lowrank/bench first (cd packages/bench && npx tsup)`);
  return [process.execPath, script];
}

function runWorker<T>(command: string[], job: WorkerJob): Promise<T> {
  return new Promise((resolve, reject) => {
    const [program, ...args] = command;
    if (program === undefined) {
      reject(new Error(`bench: the worker command for the ${job.part} measurement is empty`));
      return;
    }
    const child = spawn(program, [...args, JSON.stringify(job)], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (out += chunk));
    child.on("error", reject);
    child.on("close", (code) => {
      const last = out.trim().split("\n").at(-1) ?? "";
      if (code === 0 && /^[[{]/.test(last)) resolve(JSON.parse(last) as T);
      else reject(new Error(`bench: the ${job.part} measurement failed (exit ${code}${code === 0 ? ", no result" : ""})`));
    });
  });
}

async function writeTokenData(file: string, vocab: number, rows: number, seqLen: number): Promise<void> {
  let seed = 12345;
  const next = (): number => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
  const lines = Array.from({ length: rows }, () => JSON.stringify({ input_ids: Array.from({ length: seqLen }, () => Math.floor(next() * vocab)) }));
  await writeFile(file, `${lines.join("\n")}\n`);
}

/** The suite's phases in the order they run; progress lines are numbered from this list. */
const PHASES = ["footprint", "training", "tfjs-training", "latency", "generation", "serving", "merge", "quality"] as const;
const phase = (name: (typeof PHASES)[number]): string => `${PHASES.indexOf(name) + 1}/${PHASES.length}`;

/** Runs every measurement of the plan and computes the ratios; the caller writes JSON and the report. */
export async function runBenchSuite(options: SuiteOptions): Promise<BenchResults> {
  const started = performance.now();
  const plan: BenchPlan = benchPlan(options.quick);
  const work = await mkdtemp(path.join(os.tmpdir(), "lowrank-bench-"));
  const workerCommand = options.workerCommand ?? defaultWorkerCommand();
  const worker = <T>(job: WorkerJob): Promise<T> => runWorker<T>(workerCommand, job);
  const { log } = options;
  try {
    const largeDir = path.join(work, "gpt2-small");
    log(`writing the ${plan.large.label} checkpoint`);
    await writeRandomGpt2(largeDir, plan.large.shape);
    const dirs = { embedded: options.modelDir, large: largeDir };
    const labels = { embedded: "embedded base (models/gpt2-mini)", large: plan.large.label };
    const vocab = { embedded: 4096, large: plan.large.shape.vocab };

    log(`${phase("footprint")} trainable parameters and file sizes`);
    const parameters = [
      ...(await measureFootprint(dirs.embedded, labels.embedded, path.join(work, "footprint-embedded"))),
      ...(await measureFootprint(dirs.large, labels.large, path.join(work, "footprint-large"))),
    ];

    // LoRA against full fine-tuning on ONNX Runtime, each mode in a process of its own.
    const training: BenchResults["training"] = [];
    for (const t of plan.training) {
      const recompute = t.gradientCheckpointing === true;
      log(
        `${phase("training")} training steps on ONNX Runtime, LoRA vs full: ${labels[t.model]}, batch ${t.batchSize} × ${t.seqLen}` +
          (recompute ? ", activations recomputed" : ""),
      );
      const data = path.join(work, `train-${t.model}.jsonl`);
      await writeTokenData(data, vocab[t.model], t.batchSize * (t.warmup + t.steps), t.seqLen);
      const params = {
        model: dirs[t.model],
        data,
        lora: ADAPTER_VARIANTS[1]!.config,
        batchSize: t.batchSize,
        seqLen: t.seqLen,
        warmup: t.warmup,
        steps: t.steps,
        gradientCheckpointing: recompute,
      };
      const lora = await worker<TrainingStep>({ part: "training-step", params: { ...params, mode: "lora", backend: "onnx" } });
      let full: TrainingStep | null = null;
      let fullError: string | undefined;
      try {
        full = await worker<TrainingStep>({ part: "training-step", params: { ...params, mode: "full", backend: "onnx" } });
      } catch (error) {
        fullError = `full fine-tuning failed: ${(error as Error).message.replace(/^bench: /, "")}`;
        log(`  ${fullError}`);
      }
      training.push({
        model: labels[t.model],
        batch_size: t.batchSize,
        gradient_accumulation: 1,
        seq_len: t.seqLen,
        steps_timed: t.steps,
        gradient_checkpointing: recompute,
        lora,
        full,
        ...(fullError ? { full_error: fullError } : {}),
      });
    }

    // Issue 10's ratio: the same LoRA run on TensorFlow.js (micro-batches: its 4 GB wasm heap).
    const o = plan.tfjsTraining;
    log(`${phase("tfjs-training")} LoRA training step on TensorFlow.js: ${labels[o.model]}, batch ${o.batchSize * o.gradientAccumulation} × ${o.seqLen}`);
    const tfjsData = path.join(work, `train-tfjs-${o.model}.jsonl`);
    await writeTokenData(tfjsData, vocab[o.model], o.batchSize * o.gradientAccumulation * (o.warmup + o.steps), o.seqLen);
    const tfjsStep = await worker<TrainingStep>({
      part: "training-step",
      params: {
        model: dirs[o.model],
        data: tfjsData,
        lora: ADAPTER_VARIANTS[1]!.config,
        batchSize: o.batchSize,
        gradientAccumulation: o.gradientAccumulation,
        seqLen: o.seqLen,
        warmup: o.warmup,
        steps: o.steps,
        mode: "lora",
        backend: "tfjs",
      },
    });
    const onnxRow = training.find((t) => t.model === labels[o.model] && !t.gradient_checkpointing);
    if (!onnxRow) throw new Error(`bench: the plan has no ONNX Runtime training row for ${labels[o.model]} to compare TensorFlow.js with`);
    const onnxTraining = { model: labels[o.model], batch_size: onnxRow.batch_size, seq_len: o.seqLen, onnx: onnxRow.lora, tfjs: tfjsStep };

    const latency: LatencyRow[] = [];
    for (const l of plan.latency) {
      log(`${phase("latency")} inference latency: ${labels[l.model]}`);
      latency.push(
        ...(await worker<LatencyRow[]>({
          part: "latency",
          params: {
            modelDir: dirs[l.model],
            model: labels[l.model],
            adapter: ADAPTER_VARIANTS[1]!.config,
            batches: l.batches,
            seqLen: l.seqLen,
            rounds: l.rounds,
            ortRounds: l.ortRounds,
            warmup: l.warmup,
          },
        })),
      );
    }

    const g = plan.generation;
    log(`${phase("generation")} generation: ${labels[g.model]}, ${g.prompts} prompts × ${g.promptTokens} tokens + ${g.newTokens} new, and decoding at batch 1`);
    const speed = await worker<{ generation: GenerationRow; decode: DecodeRow }>({
      part: "generation",
      params: {
        modelDir: dirs[g.model],
        model: labels[g.model],
        adapter: ADAPTER_VARIANTS[1]!.config,
        prompts: g.prompts,
        promptTokens: g.promptTokens,
        newTokens: g.newTokens,
        rounds: g.rounds,
        warmup: g.warmup,
        decodeRepeats: g.decodeRepeats,
      },
    });

    const sv = plan.serving;
    log(
      `${phase("serving")} serving: ${labels[sv.model]}, a decoding step on ${sv.adapters} adapters at once, and lowrank serve under ${sv.clients.map((c) => c.clients).join(", ")} clients`,
    );
    const serving = await worker<BenchResults["serving"]>({
      part: "serving",
      params: { ...sv, modelDir: dirs[sv.model], model: labels[sv.model], vocab: vocab[sv.model] },
    });

    log(`${phase("merge")} merge throughput: ${labels.large}, ${ADAPTER_VARIANTS[2]!.label}`);
    const merge = await worker<MergeThroughput>({
      part: "merge",
      params: {
        baseDir: dirs.large,
        workDir: path.join(work, "merge"),
        repeats: plan.merge.repeats,
        model: labels.large,
        adapter: ADAPTER_VARIANTS[2]!.config,
        adapterLabel: ADAPTER_VARIANTS[2]!.label,
      },
    });

    log(`${phase("merge")} merge memory: ${plan.memory.label}, ${ADAPTER_VARIANTS[2]!.label}`);
    const memoryDir = path.join(work, "memory-base");
    await writeRandomGpt2(memoryDir, plan.memory.shape, 4);
    const mergeMemory = await worker<MergeMemory>({
      part: "merge-memory",
      params: {
        baseDir: memoryDir,
        outDir: path.join(work, "memory-merged"),
        model: plan.memory.label,
        adapter: ADAPTER_VARIANTS[2]!.config,
        adapterLabel: ADAPTER_VARIANTS[2]!.label,
      },
    });
    await rm(memoryDir, { recursive: true, force: true });
    await rm(path.join(work, "memory-merged"), { recursive: true, force: true });

    const quality: QualityResult[] = [];
    for (const method of ["none", "lora", "lora-all-linear", "full"] as QualityMethod[]) {
      log(`${phase("quality")} quality on E2E: ${QUALITY_METHOD_LABELS[method]}`);
      const q = plan.quality;
      quality.push(
        await worker<QualityResult>({
          part: "quality",
          params: {
            modelDir: dirs.embedded,
            e2eFile: options.e2eFile,
            method,
            steps: q.steps,
            batchSize: q.batchSize,
            evalMrs: q.evalMrs,
            maxNewTokens: q.maxNewTokens,
            learningRate: method === "full" ? q.fullLearningRate : q.loraLearningRate,
            seed: 7,
          },
        }),
      );
    }

    const bandwidth = copyBandwidthGbPerS(merge.kernel.copy_gb_per_s);
    const partial = {
      parameters,
      training,
      onnx_training: onnxTraining,
      latency,
      generation: speed.generation,
      decode: {
        ...speed.decode,
        copy_bandwidth_gb_per_s: bandwidth,
        decode_floor_tokens_per_second: decodeFloorTokensPerSecond(speed.decode.weight_bytes, bandwidth),
      },
      serving,
      merge,
      merge_memory: mergeMemory,
      quality: { model: labels.embedded, data: path.basename(options.e2eFile), results: quality },
    };
    const ratios = computeRatios(partial);
    return {
      quick: options.quick,
      date: new Date().toISOString(),
      seconds: (performance.now() - started) / 1000,
      machine: machineInfo(),
      versions: await versionInfo(options.lowrankVersion),
      models: labels,
      ...partial,
      ratios,
      targets: TARGETS.map((t) => t.check(ratios)),
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

export async function writeJsonResults(file: string, results: BenchResults): Promise<void> {
  const { writeFileAtomic } = await import("@lowrank/core/internal");
  await mkdir(path.dirname(path.resolve(file)), { recursive: true });
  await writeFileAtomic(file, `${JSON.stringify(results, null, 2)}\n`);
}
