import { describe, expect, test } from "vitest";
import { SeededRandom } from "../math/random.js";
import { captureLowrankError } from "../testing/capture-error.js";
import { causalTargets, type TrainingExample } from "./batches.js";
import { packExamples } from "./pack-examples.js";

/** An example of `length` tokens whose ids tell it apart: 100·(n+1) + t. */
const example = (n: number, length: number): TrainingExample => ({ ids: Array.from({ length }, (_, t) => 100 * (n + 1) + t) });

describe("packExamples", () => {
  test.each([
    ["best fit, longest first", [5, 3, 4, 2, 1], 6, [[0, 4], [2, 3], [1]]],
    ["a tie in length keeps the input order; a tie in room goes to the older sequence", [2, 4, 2, 2], 4, [[1], [0, 2], [3]]],
    ["exactly full sequences", [3, 3, 3], 3, [[0], [1], [2]]],
    ["everything fits in one", [1, 1, 1], 8, [[0, 1, 2]]],
  ])("%s", (_, lengths, seqLen, sources) => {
    const packed = packExamples(
      lengths.map((l, n) => example(n, l)),
      { seqLen },
    );
    expect(packed.map((p) => p.sources)).toEqual(sources);
    for (const p of packed) expect(p.ids.length).toBeLessThanOrEqual(seqLen);
  });

  test("segments number the examples within a sequence; positions restart at 0; each example's first label is −100", () => {
    const [sequence] = packExamples([{ ids: [1, 2, 3], labels: [-100, -100, 3] }, { ids: [7, 8] }], { seqLen: 8 });
    expect(sequence).toEqual({
      ids: [1, 2, 3, 7, 8],
      labels: [-100, -100, 3, -100, 8],
      segments: [0, 0, 0, 1, 1],
      positions: [0, 1, 2, 0, 1],
      sources: [0, 1],
    });
  });

  test("an example longer than seqLen is cut to it; an empty one is dropped; the inputs are not changed", () => {
    const inputs = [example(0, 5), { ids: [] }, example(2, 2)];
    const copy = structuredClone(inputs);
    const packed = packExamples(inputs, { seqLen: 4 });
    expect(packed.map((p) => p.ids)).toEqual([
      [100, 101, 102, 103],
      [300, 301],
    ]);
    expect(inputs).toEqual(copy);
  });

  test("the loss is the unpacked one: the same targets, and no token predicts the next example's first", () => {
    const rng = new SeededRandom(7);
    const examples = Array.from({ length: 200 }, (_, n) => {
      const e = example(n, 1 + Math.floor(rng.next() * 30));
      // Some examples train only their second half, as prompt/completion ones do.
      if (n % 3 === 0) e.labels = e.ids.map((id, t) => (t < e.ids.length / 2 ? -100 : id));
      return e;
    });
    const packed = packExamples(examples, { seqLen: 64 });
    expect(packed.flatMap((p) => p.sources).sort((a, b) => a - b)).toEqual(examples.map((_, n) => n));
    expect(packed.every((p) => p.ids.length <= 64 && p.segments.length === p.ids.length && p.positions.length === p.ids.length)).toBe(true);
    expect(packed.length).toBeLessThanOrEqual(Math.ceil(examples.reduce((n, e) => n + e.ids.length, 0) / 64) + 1);

    const weighted = (rows: readonly (readonly number[])[]) => {
      const { targets, weights } = causalTargets(rows);
      return targets.filter((_, i) => weights[i] === 1);
    };
    const unpacked = (n: number) => weighted([examples[n]!.labels ?? examples[n]!.ids]);
    for (const p of packed) expect(weighted([p.labels])).toEqual(p.sources.flatMap(unpacked));
    expect(packExamples(examples, { seqLen: 64 })).toEqual(packed);
  });

  test("sequence-classification examples and a bad seqLen are refused", () => {
    expect(captureLowrankError(() => packExamples([{ ids: [1], label: 0 }], { seqLen: 4 })).message).toBe(
      "packing: examples with a class `label` (sequence classification) cannot be packed; packing is for causal-LM training",
    );
    expect(captureLowrankError(() => packExamples([{ ids: [1] }], { seqLen: 0 })).message).toBe("packing: `seqLen` must be a positive integer, got 0");
  });
});
