import { describe, expect, test } from "vitest";
import { makeBatch, packExamples, type TrainingExample } from "@lowrank/core/internal";
import { maxAbsDiff, requireFixture } from "@lowrank/core/testing";
import { createOnnxLoraTraining } from "./create-onnx-lora-training.js";
import { runBatch } from "./training-session.js";

// Packed sequences (core's packExamples): each example in a packed row must give exactly what it
// gives alone — attention within its segment, positions from 0 — so the loss and every gradient of
// a packed batch equal those of the same examples unpacked (the first token of each example is not
// predicted either way).
const EXAMPLES: TrainingExample[] = [{ ids: [5, 17, 42, 99, 3, 8, 21] }, { ids: [7, 7, 1, 30, 2] }, { ids: [11, 4, 9, 60, 12, 13, 14, 15, 16] }];

describe.each([
  ["gpt2-tiny", ["c_attn", "c_fc"]],
  ["llama-tiny", ["q_proj", "v_proj", "down_proj"]],
  ["mistral-sw-tiny", ["q_proj", "o_proj"]],
])("packed sequences on %s", (base, targets) => {
  test("a packed batch gives the unpacked batch's loss and gradients", async () => {
    const lora = { r: 4, lora_alpha: 8, target_modules: targets, init_lora_weights: false };
    const packed = packExamples(EXAMPLES, { seqLen: 16 });
    expect(packed.length).toBeLessThan(EXAMPLES.length);
    const run = async (examples: readonly TrainingExample[], isPacked: boolean) => {
      const training = await createOnnxLoraTraining({ model: requireFixture(base), lora, seed: 3, packed: isPacked });
      try {
        const batch = makeBatch(examples, 0);
        const feeds = { slots: training.slots, ids: batch.ids, factors: training.params, segments: batch.segments, positions: batch.positions };
        return await runBatch(training.session, { ...feeds, labels: batch.labels, gradients: true });
      } finally {
        await training.release();
      }
    };
    const alone = await run(EXAMPLES, false);
    const together = await run(packed, true);
    expect(together.predicted).toBe(alone.predicted);
    expect(Math.abs(together.loss - alone.loss)).toBeLessThanOrEqual(1e-5);
    for (const [key, grad] of alone.grads) {
      const scale = Math.max(1e-12, ...grad.map(Math.abs));
      expect(maxAbsDiff(together.grads.get(key)!, grad) / scale, key).toBeLessThanOrEqual(1e-4);
    }
  });
});
