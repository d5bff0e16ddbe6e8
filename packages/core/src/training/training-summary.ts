import type { TrainParams } from "../backend/backend.js";
import type { StepLog } from "./trainer-types.js";

/** The file every training run writes beside its adapter (or full checkpoint). */
export const TRAINING_SUMMARY_FILE = "training_summary.json";

/** training_summary.json's text: the run's settings, its result and every step's loss. */
export function trainingSummaryText(run: {
  params: TrainParams;
  seed: number;
  log: readonly StepLog[];
  finalEval?: { loss: number; perplexity: number };
  trainableParameters: number;
  totalParameters: number;
  seconds: number;
  device: string;
  backend: string;
}): string {
  const summary = {
    base_model: run.params.model,
    data: run.params.data,
    steps: run.log.at(-1)?.step ?? 0,
    seed: run.seed,
    final_loss: run.log.at(-1)?.loss ?? null,
    ...(run.finalEval ? { eval_loss: run.finalEval.loss, eval_perplexity: run.finalEval.perplexity } : {}),
    trainable_parameters: run.trainableParameters,
    total_parameters: run.totalParameters,
    seconds: run.seconds,
    device: run.device,
    backend: run.backend,
    losses: run.log.map((l) => l.loss),
  };
  return `${JSON.stringify(summary, null, 2)}\n`;
}
