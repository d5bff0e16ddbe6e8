import { describe, expect, test } from "vitest";
import { captureLowrankError } from "../testing/capture-error.js";
import { causalTargets, makeBatch } from "./batches.js";

describe("makeBatch and causalTargets: per-token labels", () => {
  test("labels are each example's own (else its ids), −100 on padding", () => {
    const batch = makeBatch([{ ids: [1, 2, 3, 4], labels: [-100, -100, 3, 4] }, { ids: [5, 6] }], 0);
    expect(batch).toEqual({
      ids: [
        [1, 2, 3, 4],
        [5, 6, 0, 0],
      ],
      mask: [
        [1, 1, 1, 1],
        [1, 1, 0, 0],
      ],
      labels: [
        [-100, -100, 3, 4],
        [5, 6, -100, -100],
      ],
      classes: [0, 0],
      tokens: 6,
    });
    // Prompt tokens are never targets: position 1 predicts 3, position 2 predicts 4; the other row predicts 6.
    expect(causalTargets(batch.labels)).toEqual({ targets: [0, 3, 4, 0, 6, 0, 0, 0], weights: [0, 1, 1, 0, 1, 0, 0, 0], predicted: 3 });
  });

  test("labels that do not line up with the ids are refused", () => {
    expect(captureLowrankError(() => makeBatch([{ ids: [1, 2], labels: [1] }], 0)).message).toBe("makeBatch: an example has 2 ids but 1 labels");
  });
});

test("packed examples keep their segments and positions in the batch: −1 and 0 on padding; an unpacked one is one segment", () => {
  const batch = makeBatch([{ ids: [1, 2, 3, 4], labels: [-100, 2, -100, 4], segments: [0, 0, 1, 1], positions: [0, 1, 0, 1] }, { ids: [5, 6] }], 0);
  expect(batch.segments).toEqual([
    [0, 0, 1, 1],
    [0, 0, -1, -1],
  ]);
  expect(batch.positions).toEqual([
    [0, 1, 0, 1],
    [0, 1, 0, 0],
  ]);
  expect(makeBatch([{ ids: [5, 6] }], 0).segments).toBeUndefined();
});
