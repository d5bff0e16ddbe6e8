import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, test } from "vitest";
import { makeBatch, packExamples, type TrainingExample } from "@lowrank/core/internal";
import { maxAbsDiff, requireFixture } from "@lowrank/core/testing";
import { selectEngine } from "../engine/select-engine.js";
import { inferenceContext } from "../layers/lora-branch.js";
import { loadModel } from "./load-model.js";

beforeAll(async () => {
  await selectEngine();
});

// Packed sequences: every token of a packed row gets the logits it gets in its example alone
// (attention within its segment, positions restarting at 0).
const EXAMPLES: TrainingExample[] = [{ ids: [5, 17, 42, 99, 3, 8, 21] }, { ids: [7, 7, 1, 30, 2] }, { ids: [11, 4, 9, 60, 12, 13, 14, 15, 16] }];

describe.each(["gpt2-tiny", "llama-tiny", "mistral-sw-tiny", "gemma2-tiny"])("packed sequences on %s (tfjs)", (base) => {
  test("each packed token's logits equal its example's alone", async () => {
    const model = await loadModel(requireFixture(base));
    const packed = packExamples(EXAMPLES, { seqLen: 16 });
    const batch = makeBatch(packed, 0);
    const logits = (input: Parameters<typeof model.forward>[0]) => tf.tidy(() => model.forward(input, inferenceContext()).logits.arraySync() as number[][][]);
    const together = logits({
      inputIds: tf.tensor2d(batch.ids, undefined, "int32"),
      attentionMask: batch.mask,
      segments: batch.segments,
      positionIds: batch.positions,
    });
    const rows = packed.flatMap((p, row) => p.sources.map((source, segment) => ({ source, row, segment })));
    expect(rows.map((r) => r.source).sort()).toEqual([0, 1, 2]);
    for (const { source, row, segment } of rows) {
      const alone = logits({ inputIds: tf.tensor2d([EXAMPLES[source]!.ids], undefined, "int32") })[0]!;
      const at = batch.segments![row]!.flatMap((s, t) => (s === segment ? [t] : []));
      expect(at).toHaveLength(alone.length);
      const got = Float32Array.from(at.flatMap((t) => together[row]![t]!));
      expect(maxAbsDiff(got, Float32Array.from(alone.flat())), `example ${source}`).toBeLessThanOrEqual(1e-4);
    }
  });
});
