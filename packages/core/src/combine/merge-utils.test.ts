import { describe, expect, test } from "vitest";
import { SeededRandom } from "../math/random.js";
import { disjointMerge, majoritySignMask, mergeTasks, pruneByMagnitude, pruneRandomly, taskArithmetic } from "./merge-utils.js";

const f = (...x: number[]): Float64Array => Float64Array.from(x);
const list = (x: ArrayLike<number>): number[] => Array.from(x, (v) => (Object.is(v, -0) ? 0 : v));
const params = (density: number, method: "total" | "frequency" = "total", seed = 0) => ({ density, majoritySignMethod: method, rng: new SeededRandom(seed) });

describe("PEFT merge_utils on hand-made tensors", () => {
  test("task_arithmetic: Σₜ wₜ·xₜ", () => {
    expect(list(taskArithmetic([f(1, 2), f(3, 4)], [2, -1]))).toEqual([-1, 0]);
  });

  test.each([
    [[1, -4, 2, 3], 0.5, [0, -4, 0, 3]], // keep ⌊0.5·4⌋ = 2 largest |x|
    [[5, -1, 0.5, -7, 2], 0.6, [5, 0, 0, -7, 2]], // ⌊0.6·5⌋ = 3
    [[5, -1, 0.5], 0.2, [0, 0, 0]], // ⌊0.6⌋ = 0 kept
    [[5, -1, 0.5], 1, [5, -1, 0.5]], // density ≥ 1: unchanged
  ])("magnitude pruning of %j at density %d keeps the top ⌊density·n⌋ by |x|: %j", (x, density, want) => {
    expect(list(pruneByMagnitude(f(...x), density))).toEqual(want);
  });

  test("random pruning (DARE): kept entries are x / density, the rest 0; about density of them kept; seeded", () => {
    const x = Float64Array.from({ length: 100_000 }, (_, i) => 1 + (i % 7));
    const pruned = pruneRandomly(x, 0.3, new SeededRandom(5));
    let kept = 0,
      worst = 0;
    pruned.forEach((v, i) => {
      if (v !== 0) {
        kept++;
        worst = Math.max(worst, Math.abs(v - x[i]! / 0.3));
      }
    });
    expect(worst).toBeLessThan(1e-12);
    expect(Math.abs(kept / x.length - 0.3)).toBeLessThan(0.01);
    expect(list(pruneRandomly(x, 0.3, new SeededRandom(5)))).toEqual(list(pruned));
    expect(list(pruneRandomly(x, 0.3, new SeededRandom(6)))).not.toEqual(list(pruned));
    expect(pruneRandomly(x, 1, new SeededRandom(5))).toBe(x); // PEFT: density ≥ 1 returns the tensor, no rescale
  });

  // biome-ignore format: keeps the line within 160 bytes (the title has multi-byte characters)
  const majoritySignTitle =
    "majority sign: 'total' elects the sign of Σ x (3 − 1 − 1 > 0 → +), 'frequency' the sign of Σ sign(x) (1 − 2 < 0 → −); zeros never vote";
  test(majoritySignTitle, () => {
    const tasks = [f(3, 0), f(-1, 0), f(-1, 2)];
    expect(majoritySignMask(tasks, "total").map(list)).toEqual([
      [1, 0],
      [0, 0],
      [0, 1],
    ]);
    expect(majoritySignMask(tasks, "frequency").map(list)).toEqual([
      [0, 0],
      [1, 0],
      [1, 1],
    ]);
  });

  test("disjoint merge: Σ mask·y / max(Σ mask, 1)", () => {
    expect(list(disjointMerge([f(2, 5, 1), f(4, 5, 1)], [Uint8Array.of(1, 1, 0), Uint8Array.of(1, 0, 0)]))).toEqual([3, 5, 0]);
  });

  // t₁ = [3, 1, 0, −2], t₂ = [−1, 1, 4, −3], t₃ = [−1, −5, 0, 2], weights [1, 2, 3], no pruning.
  // total:     Σt = [1, −3, 4, −3] → signs [+, −, +, −] → [3·1/1, −5·3/1, 4·2/1, (−2·1 − 3·2)/2] = [3, −15, 8, −4]
  // frequency: Σ sign = [−1, 1, 1, −1] → [(−1·2 − 1·3)/2, (1·1 + 1·2)/2, 8, −4] = [−2.5, 1.5, 8, −4]
  const tasks = [f(3, 1, 0, -2), f(-1, 1, 4, -3), f(-1, -5, 0, 2)];
  test.each([
    ["total", [3, -15, 8, -4]],
    ["frequency", [-2.5, 1.5, 8, -4]],
  ] as const)("ties at density 1 with '%s' sign election", (method, want) => {
    expect(list(mergeTasks("ties", tasks, [1, 2, 3], params(1, method)))).toEqual(want);
  });

  test("ties at density 0.5: each task keeps its 2 largest |x| first", () => {
    // pruned: [3, 0, 0, −2], [0, 0, 4, −3], [0, −5, 0, 2]; Σ = [3, −5, 4, −3] → [+, −, +, −]
    // → [3, −5·3, 4·2, (−2·1 − 3·2)/2] = [3, −15, 8, −4]
    expect(list(mergeTasks("ties", tasks, [1, 2, 3], params(0.5)))).toEqual([3, -15, 8, -4]);
  });

  test("magnitude_prune: Σ wₜ·prune(tₜ), no sign election", () => {
    // pruned as above: [3, −5·3, 4·2, −2·1 − 3·2 + 2·3]
    expect(list(mergeTasks("magnitude_prune", tasks, [1, 2, 3], params(0.5)))).toEqual([3, -15, 8, -2]);
  });

  test("dare_linear = Σ wₜ·dare(tₜ) and dare_ties = ties on the dare-pruned tasks, with the draws taken task by task", () => {
    const rng = new SeededRandom(11);
    const pruned = tasks.map((t) => pruneRandomly(t, 0.5, rng));
    expect(list(mergeTasks("dare_linear", tasks, [1, 2, 3], params(0.5, "total", 11)))).toEqual(list(taskArithmetic(pruned, [1, 2, 3])));
    const weighted = pruned.map((t, k) => t.map((v) => v * [1, 2, 3][k]!));
    expect(list(mergeTasks("dare_ties", tasks, [1, 2, 3], params(0.5, "frequency", 11)))).toEqual(
      list(disjointMerge(weighted, majoritySignMask(pruned, "frequency"))),
    );
    expect(list(mergeTasks("dare_linear", tasks, [1, 2, 3], params(1)))).toEqual(list(taskArithmetic(tasks, [1, 2, 3])));
  });
});
