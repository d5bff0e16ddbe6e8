/** Learning-rate schedules with linear warm-up, as transformers' get_*_schedule_with_warmup. */
export type ScheduleName = "constant" | "linear" | "cosine";

/**
 * The learning rate before optimizer step `step` (0-based) of `total`: linear warm-up over `warmup`
 * steps, then constant, linear decay to 0, or half a cosine (transformers' schedules).
 */
export function learningRateAt(params: { step: number; total: number; warmup: number; base: number; schedule: ScheduleName }): number {
  const { step, total, warmup, base, schedule } = params;
  if (warmup > 0 && step < warmup) return (base * step) / warmup;
  if (schedule === "constant") return base;
  const progress = Math.min(1, (step - warmup) / Math.max(1, total - warmup));
  if (schedule === "linear") return base * Math.max(0, 1 - progress);
  return base * 0.5 * (1 + Math.cos(Math.PI * progress));
}

/** The learning rate of optimizer step `step` of `total` under a run's options (defaults: no warm-up, linear decay). */
export function stepLearningRate(options: { learningRate: number; warmupSteps?: number; schedule?: ScheduleName }, step: number, total: number): number {
  return learningRateAt({ step, total, warmup: options.warmupSteps ?? 0, base: options.learningRate, schedule: options.schedule ?? "linear" });
}
