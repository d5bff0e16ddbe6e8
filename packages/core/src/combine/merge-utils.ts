/**
 * PEFT's peft/utils/merge_utils.py on flat float64 arrays: each "task tensor" is one adapter's
 * tensor (a factor, or a whole delta) and every task has the same length. Weights multiply each
 * task after pruning and sign election, as in PEFT.
 */
import type { SeededRandom } from "../math/random.js";

export type MajoritySignMethod = "total" | "frequency";

/** Σₜ wₜ·xₜ (PEFT's task_arithmetic). */
export function taskArithmetic(tasks: readonly Float64Array[], weights: readonly number[]): Float64Array {
  const out = new Float64Array(tasks[0]!.length);
  tasks.forEach((t, k) => {
    for (let i = 0; i < out.length; i++) out[i]! += weights[k]! * t[i]!;
  });
  return out;
}

/**
 * Keeps the ⌊density·n⌋ entries of largest |x| and zeroes the rest (PEFT's magnitude_based_pruning;
 * ties in |x| keep the lower index). density ≥ 1 keeps everything.
 */
export function pruneByMagnitude(x: Float64Array, density: number): Float64Array {
  if (density >= 1) return x;
  const keep = Math.floor(density * x.length);
  const order = Array.from(x.keys()).sort((a, b) => Math.abs(x[b]!) - Math.abs(x[a]!) || a - b);
  const out = new Float64Array(x.length);
  for (let k = 0; k < keep; k++) out[order[k]!] = x[order[k]!]!;
  return out;
}

/**
 * Keeps each entry with probability `density` and divides the kept ones by density (DARE; PEFT's
 * random_pruning with rescale). PEFT draws the mask with torch.bernoulli; here entry i is kept when
 * the i-th draw of `rng` is below density, so results are reproducible but not PEFT's draws.
 * density ≥ 1 returns x unchanged, as PEFT does.
 */
export function pruneRandomly(x: Float64Array, density: number, rng: SeededRandom): Float64Array {
  if (density >= 1) return x;
  return Float64Array.from(x, (v) => (rng.next() < density ? v / density : 0));
}

/**
 * PEFT's calculate_majority_sign_mask: the elected sign per entry is the sign of Σₜ xₜ ("total") or
 * of Σₜ sign(xₜ) ("frequency"), with 0 counting as +; task t takes part where sign(xₜ) equals it
 * (so zeros never do). Computed on the pruned, unweighted tasks.
 */
export function majoritySignMask(tasks: readonly Float64Array[], method: MajoritySignMethod): Uint8Array[] {
  const n = tasks[0]!.length;
  const vote = new Float64Array(n);
  for (const t of tasks) for (let i = 0; i < n; i++) vote[i]! += method === "total" ? t[i]! : Math.sign(t[i]!);
  return tasks.map((t) => Uint8Array.from(t, (v, i) => (Math.sign(v) === (vote[i]! >= 0 ? 1 : -1) ? 1 : 0)));
}

/** PEFT's disjoint_merge: Σₜ maskₜ·yₜ / max(Σₜ maskₜ, 1), per entry. */
export function disjointMerge(weighted: readonly Float64Array[], masks: readonly Uint8Array[]): Float64Array {
  const n = weighted[0]!.length;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let sum = 0,
      count = 0;
    weighted.forEach((y, t) => {
      if (masks[t]![i]) {
        sum += y[i]!;
        count++;
      }
    });
    out[i] = sum / Math.max(count, 1);
  }
  return out;
}

function scaled(tasks: readonly Float64Array[], weights: readonly number[]): Float64Array[] {
  return tasks.map((t, k) => Float64Array.from(t, (v) => v * weights[k]!));
}

export type MergeMethod = "task_arithmetic" | "magnitude_prune" | "ties" | "dare_linear" | "dare_ties";

export interface MergeParams {
  density: number;
  majoritySignMethod: MajoritySignMethod;
  rng: SeededRandom;
}

/**
 * One of PEFT's merge functions: task_arithmetic Σ wₜxₜ; magnitude_prune Σ wₜ·prune(xₜ);
 * ties: prune by magnitude, elect signs, disjoint-merge the weighted tasks; dare_linear Σ wₜ·dare(xₜ);
 * dare_ties: dare, elect signs, disjoint merge.
 */
export function mergeTasks(method: MergeMethod, tasks: readonly Float64Array[], weights: readonly number[], p: MergeParams): Float64Array {
  switch (method) {
    case "task_arithmetic":
      return taskArithmetic(tasks, weights);
    case "magnitude_prune":
      return taskArithmetic(
        tasks.map((t) => pruneByMagnitude(t, p.density)),
        weights,
      );
    case "dare_linear":
      return taskArithmetic(
        tasks.map((t) => pruneRandomly(t, p.density, p.rng)),
        weights,
      );
    case "ties":
    case "dare_ties": {
      const pruned = tasks.map((t) => (method === "ties" ? pruneByMagnitude(t, p.density) : pruneRandomly(t, p.density, p.rng)));
      return disjointMerge(scaled(pruned, weights), majoritySignMask(pruned, p.majoritySignMethod));
    }
  }
}
