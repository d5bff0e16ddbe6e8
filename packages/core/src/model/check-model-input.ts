import { LowrankError } from "../errors/lowrank-error.js";

/**
 * Checks token ids (and an optional attention mask) before any backend runs them: rows equally
 * long and non-empty, every id an integer in [0, vocabSize), mask values 0 or 1 in the ids' shape.
 * Engines index embeddings without checking (ONNX Runtime even wraps negative ids), so a bad id
 * must never reach them. `vocabSize` undefined checks only that ids are non-negative integers.
 * @throws LowrankError USAGE naming the row, position and value.
 */
export function checkModelInput(params: {
  inputIds: readonly (readonly number[])[];
  attentionMask?: readonly (readonly number[])[];
  vocabSize: number | undefined;
  label?: string;
}): void {
  const { inputIds, attentionMask, vocabSize } = params;
  const what = params.label ?? "input";
  if (inputIds.length === 0 || inputIds[0]!.length === 0) throw new LowrankError("USAGE", `${what} ids are empty`);
  const width = inputIds[0]!.length;
  inputIds.forEach((row, i) => {
    if (row.length !== width) throw new LowrankError("USAGE", `${what} ids row ${i} has ${row.length} ids, row 0 has ${width}: rows must be equally long`);
    row.forEach((id, j) => {
      if (!Number.isInteger(id) || id < 0 || (vocabSize !== undefined && id >= vocabSize)) {
        const range = vocabSize !== undefined ? `0–${vocabSize - 1}` : "0 or more";
        throw new LowrankError("USAGE", `${what} id ${JSON.stringify(id)} at [${i}][${j}] is outside the vocabulary (${range})`);
      }
    });
  });
  if (attentionMask) {
    if (attentionMask.length !== inputIds.length || attentionMask.some((r) => r.length !== width)) {
      throw new LowrankError("USAGE", `attention mask must have the input ids' shape [${inputIds.length}, ${width}]`);
    }
    if (attentionMask.some((r) => r.some((m) => m !== 0 && m !== 1))) throw new LowrankError("USAGE", "attention mask values must be 0 or 1");
  }
}
