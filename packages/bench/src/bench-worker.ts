import type { LoraConfigInput } from "@lowrank/core";
import type { QualityParams } from "./e2e-quality.js";
import type { GenerationParams } from "./generation-speed.js";
import type { LatencyParams } from "./inference-latency.js";
import { randomAdapter } from "./synthetic-model.js";
import type { TrainingStepParams } from "./training-step.js";
import type { ServingParams } from "./serving-speed.js";

/** One measurement, run in a process of its own so that memory and warm caches do not mix. */
export type WorkerJob =
  | { part: "training-step"; params: TrainingStepParams }
  | { part: "latency"; params: Omit<LatencyParams, "adapter"> & { adapter: LoraConfigInput } }
  | { part: "generation"; params: Omit<GenerationParams, "adapter"> & { adapter: LoraConfigInput } }
  | { part: "merge"; params: { baseDir: string; workDir: string; repeats: number; model: string; adapter: LoraConfigInput; adapterLabel: string } }
  | { part: "merge-memory"; params: { baseDir: string; outDir: string; model: string; adapter: LoraConfigInput; adapterLabel: string } }
  | { part: "quality"; params: QualityParams }
  | { part: "serving"; params: ServingParams };

/**
 * Runs a job and returns its JSON-ready result. Each part loads only its own modules, so that a
 * merge's peak memory does not include a runtime it never uses.
 */
export async function runWorkerJob(job: WorkerJob): Promise<unknown> {
  switch (job.part) {
    case "training-step":
      return (await import("./training-step.js")).measureTrainingStep(job.params);
    case "latency":
      return (await import("./inference-latency.js")).measureInferenceLatency({
        ...job.params,
        adapter: await randomAdapter(job.params.modelDir, job.params.adapter),
      });
    case "generation":
      return (await import("./generation-speed.js")).measureGenerationSpeed({
        ...job.params,
        adapter: await randomAdapter(job.params.modelDir, job.params.adapter),
      });
    case "merge":
      return (await import("./merge-throughput.js")).measureMergeThroughput({
        ...job.params,
        adapter: await randomAdapter(job.params.baseDir, job.params.adapter),
      });
    case "merge-memory":
      return (await import("./merge-memory.js")).measureMergeMemory({ ...job.params, adapter: await randomAdapter(job.params.baseDir, job.params.adapter) });
    case "quality":
      return (await import("./e2e-quality.js")).measureE2eQuality(job.params);
    case "serving":
      return (await import("./serving-speed.js")).measureServing(job.params);
  }
}
