import type { LoraConfigInput } from "@lowrank/core";
import { measureE2eQuality, type QualityParams } from "./e2e-quality.js";
import { measureInferenceLatency, type LatencyParams } from "./inference-latency.js";
import { measureMergeThroughput } from "./merge-throughput.js";
import { randomAdapter } from "./synthetic-model.js";
import { measureTrainingStep, type TrainingStepParams } from "./training-step.js";

/** One measurement, run in a process of its own so that memory and warm caches do not mix. */
export type WorkerJob =
  | { part: "training-step"; params: TrainingStepParams }
  | { part: "latency"; params: Omit<LatencyParams, "adapter"> & { adapter: LoraConfigInput } }
  | { part: "merge"; params: { baseDir: string; workDir: string; repeats: number; model: string; adapter: LoraConfigInput; adapterLabel: string } }
  | { part: "quality"; params: QualityParams };

/** Runs a job and returns its JSON-ready result. */
export async function runWorkerJob(job: WorkerJob): Promise<unknown> {
  switch (job.part) {
    case "training-step":
      return measureTrainingStep(job.params);
    case "latency":
      return measureInferenceLatency({ ...job.params, adapter: await randomAdapter(job.params.modelDir, job.params.adapter) });
    case "merge":
      return measureMergeThroughput({ ...job.params, adapter: await randomAdapter(job.params.baseDir, job.params.adapter) });
    case "quality":
      return measureE2eQuality(job.params);
  }
}
