import { describe, expect, test } from "vitest";
import { captureLowrankError } from "../testing/capture-error.js";
import { checkModelInput } from "./check-model-input.js";

describe("checkModelInput", () => {
  test("accepts ids inside the vocabulary and a 0/1 mask of the same shape", () => {
    expect(() =>
      checkModelInput({
        inputIds: [
          [0, 5, 9],
          [9, 9, 9],
        ],
        attentionMask: [
          [1, 1, 0],
          [1, 1, 1],
        ],
        vocabSize: 10,
      }),
    ).not.toThrow();
  });

  test.each([
    [[[1, 10]], 10, "input id 10 at [0][1] is outside the vocabulary (0–9)"],
    [
      [
        [1, 2],
        [3, -1],
      ],
      10,
      "input id -1 at [1][1] is outside the vocabulary (0–9)",
    ],
    [[[1, 2.5]], 10, "input id 2.5 at [0][1] is outside the vocabulary (0–9)"],
    [[[1, -2]], undefined, "input id -2 at [0][1] is outside the vocabulary (0 or more)"],
    [[[1, 2], [3]], 10, "input ids row 1 has 1 ids, row 0 has 2: rows must be equally long"],
    [[], 10, "input ids are empty"],
  ])("%j with vocabulary %s: %s", (inputIds, vocabSize, message) => {
    const error = captureLowrankError(() => checkModelInput({ inputIds, vocabSize }));
    expect(error.usage).toBe(true);
    expect(error.message).toBe(message);
  });

  test("a mask of another shape or with other values is refused", () => {
    expect(captureLowrankError(() => checkModelInput({ inputIds: [[1, 2]], attentionMask: [[1]], vocabSize: 5 })).message).toBe(
      "attention mask must have the input ids' shape [1, 2]",
    );
    expect(captureLowrankError(() => checkModelInput({ inputIds: [[1, 2]], attentionMask: [[1, 2]], vocabSize: 5 })).message).toBe(
      "attention mask values must be 0 or 1",
    );
  });
});
