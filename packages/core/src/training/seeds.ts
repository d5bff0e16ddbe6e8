/**
 * The seeds a training run derives from its `--seed`. Every backend draws from these, so the same
 * seed gives the same initial factors and the same dropout masks on each of them.
 */

/**
 * The seed of one target's LoRA factor initialisation (core's initLoraFactors).
 * @param seed the run's seed.
 * @param targetIndex the target's position in core's target report (resolveTargets).
 * @returns `seed · 7919 + targetIndex`.
 */
export function loraInitSeed(seed: number, targetIndex: number): number {
  return seed * 7919 + targetIndex;
}

/**
 * The seed of one micro-batch's dropout masks while training.
 * @param seed the run's seed.
 * @param microBatchIndex the micro-batch's position in the whole run: `step · accumulation + micro`.
 * @returns `seed · 100003 + microBatchIndex`.
 */
export function dropoutSeed(seed: number, microBatchIndex: number): number {
  return seed * 100_003 + microBatchIndex;
}
