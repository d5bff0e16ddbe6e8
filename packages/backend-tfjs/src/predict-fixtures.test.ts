import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, test } from "vitest";
import { readAdapter, readSafetensors, toFloat32 } from "@lowrank/core";
import { maxAbsDiff, requireFixture, idRows } from "@lowrank/core/testing";
import { selectEngine } from "./engine/select-engine.js";
import { inferenceContext } from "./layers/lora-branch.js";
import { attachAdapter, detachAdapter, setMerged } from "./lora/attach-adapter.js";
import { loadModel } from "./models/load-model.js";

beforeAll(async () => {
  await selectEngine();
});

const PAIRS = [
  { base: "gpt2-tiny", adapter: "gpt2-tiny-lora", cases: "gpt2-tiny-lora" },
  { base: "llama-tiny", adapter: "llama-tiny-lora", cases: "llama-tiny-lora" },
  { base: "roberta-tiny", adapter: "roberta-tiny-lora", cases: "roberta-tiny-lora" },
  { base: "gpt2-tiny", adapter: "gpt2-tiny-dora", cases: "gpt2-tiny-dora" },
  { base: "llama-tiny", adapter: "llama-tiny-embed-lora", cases: "llama-tiny-embed-lora" },
  { base: "gpt2-tiny", adapter: "gpt2-tiny-lora-bin", cases: "gpt2-tiny-lora" },
  // Mistral with sliding_window 4 on 12-token cases: positions past the window differ without it.
  { base: "mistral-sw-tiny", adapter: "mistral-sw-tiny-lora", cases: "mistral-sw-tiny-lora" },
  // LoRA on Phi-3's fused qkv_proj, applied before the split.
  { base: "phi3-tiny", adapter: "phi3-tiny-lora", cases: "phi3-tiny-lora" },
  { base: "gemma-tiny", adapter: "gemma-tiny-lora", cases: "gemma-tiny-lora" },
  // Soft caps, query_pre_attn_scalar, a window of 4 on even layers, pre/post feed-forward norms.
  { base: "gemma2-tiny", adapter: "gemma2-tiny-lora", cases: "gemma2-tiny-lora" },
];

describe.each(PAIRS)("$adapter on tfjs", (pair) => {
  test("base, adapted and merged logits match PEFT within 1e-4; unmerge gives the base again", async () => {
    const cases = (await readSafetensors(requireFixture("cases", `${pair.cases}.safetensors`))).tensors;
    const ids = idRows(cases.get("input_ids")!);
    const mask = idRows(cases.get("attention_mask")!);
    const model = await loadModel(requireFixture(pair.base));
    const run = () =>
      tf.tidy(() => {
        const out = model.forward({ inputIds: tf.tensor2d(ids, undefined, "int32"), attentionMask: mask }, inferenceContext());
        return { logits: out.logits.dataSync() as Float32Array, hidden: out.lastHiddenState.dataSync() as Float32Array };
      });
    const expectClose = (got: Float32Array, key: string) => expect(maxAbsDiff(got, toFloat32(cases.get(key)!)), key).toBeLessThanOrEqual(1e-4);
    // Hidden states at padded positions are whatever transformers computes there: compare real tokens only.
    const expectHidden = (got: Float32Array, key: string) => {
      const want = toFloat32(cases.get(key)!);
      const hidden = want.length / (ids.length * ids[0]!.length);
      let worst = 0;
      mask.forEach((row, b) =>
        row.forEach((m, s) => {
          if (!m) return;
          for (let d = 0; d < hidden; d++)
            worst = Math.max(worst, Math.abs(got[(b * row.length + s) * hidden + d]! - want[(b * row.length + s) * hidden + d]!));
        }),
      );
      expect(worst, key).toBeLessThanOrEqual(1e-4);
    };
    const hasHidden = cases.has("base_last_hidden_state");
    const base = run();
    expectClose(base.logits, "base_logits");
    if (hasHidden) expectHidden(base.hidden, "base_last_hidden_state");
    const attached = attachAdapter(model, await readAdapter(requireFixture(pair.adapter)));
    const adapted = run();
    expectClose(adapted.logits, "adapted_logits");
    if (hasHidden) expectHidden(adapted.hidden, "adapted_last_hidden_state");
    setMerged(model, true);
    const merged = run();
    expectClose(merged.logits, "merged_logits");
    if (hasHidden) expectHidden(merged.hidden, "merged_last_hidden_state");
    setMerged(model, false);
    expectClose(run().logits, "adapted_logits");
    detachAdapter(model, attached);
    expect(maxAbsDiff(run().logits, base.logits)).toBe(0);
  });
});
