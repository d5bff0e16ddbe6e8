import { describe, expect, test } from "vitest";
import { computeRatios, TARGETS } from "./ratios.js";
import { spread } from "./stats.js";

const s = (median: number) => ({ median, min: median, max: median, n: 1 });
const latency = (model: string, batch: number, base: number, merged: number, unmerged: number) => ({
  model,
  batch,
  seq_len: 32,
  ort_provider: "cpu",
  tfjs_engine: "wasm",
  ort_base: s(base),
  ort_merged: s(merged),
  ort_unmerged: s(unmerged),
  tfjs_base: s(10),
  tfjs_merged: s(10),
  tfjs_unmerged: s(11),
});
const step = (mode: "lora" | "full", seconds: number, rss: number) => ({
  mode,
  backend: "tfjs" as const,
  engine: "wasm",
  batch_size: 1,
  gradient_accumulation: 1,
  trainable_parameters: 1,
  total_parameters: 1,
  step_seconds: s(seconds),
  tokens_per_second: 1,
  peak_rss_bytes: rss,
  peak_tensor_bytes: rss / 2,
  process_peak_rss_bytes: rss,
});
const measured = {
  parameters: [
    { model: "GPT-2 small", method: "LoRA r=4, attention (c_attn)", trainable_parameters: 100, total_parameters: 10_000, file_bytes: 500 },
    { model: "GPT-2 small", method: "full fine-tuning", trainable_parameters: 10_000, total_parameters: 10_000, file_bytes: 40_000 },
  ],
  training: [
    {
      model: "embedded",
      batch_size: 1,
      gradient_accumulation: 1,
      seq_len: 1,
      steps_timed: 1,
      lora: step("lora", 1, 100),
      full: step("full", 4, 400) as ReturnType<typeof step> | null,
    },
    {
      model: "GPT-2 small",
      batch_size: 1,
      gradient_accumulation: 1,
      seq_len: 1,
      steps_timed: 1,
      lora: step("lora", 3, 200),
      full: step("full", 5, 800) as ReturnType<typeof step> | null,
    },
  ],
  latency: [latency("embedded", 1, 1, 5, 5), latency("GPT-2 small", 1, 10, 10.05, 11), latency("GPT-2 small", 8, 40, 40, 48)],
  merge: {
    model: "m",
    adapter: "a",
    checkpoint_bytes: 1,
    adapted_bytes: 1,
    repeats: 1,
    kernel: { copy_seconds: s(1), merge_seconds: s(1), copy_gb_per_s: 10, merge_gb_per_s: 5 },
    file: { copy_seconds: s(1), copyfile_seconds: s(1), merge_seconds: s(1), copy_gb_per_s: 1.2, copyfile_gb_per_s: 2, merge_gb_per_s: 0.9 },
  },
  quality: {
    model: "e",
    data: "d",
    results: [
      { method: "lora" as const, eval_loss: 1.1, bleu: 0.3 },
      { method: "full" as const, eval_loss: 1.0, bleu: 0.4 },
    ] as never,
  },
};

describe("benchmark ratios", () => {
  test("come from the realistic-size model when measured, batch 1 for latency", () => {
    const r = computeRatios(measured);
    expect(r.merged_over_base_latency).toBeCloseTo(1.005, 12);
    expect(r.unmerged_over_base_latency).toBeCloseTo(1.1, 12);
    expect(r.unmerged_over_base_latency_batch8).toBeCloseTo(1.2, 12);
    expect(r.lora_over_full_step_time).toBeCloseTo(0.6, 12);
    expect(r.lora_over_full_peak_memory).toBeCloseTo(0.25, 12);
    expect(r.merge_over_copy_bandwidth).toBeCloseTo(0.75, 12);
    expect(r.lora_over_full_eval_loss).toBeCloseTo(1.1, 12);
    expect(r.full_over_lora_trainable_parameters).toBe(100);
    expect(r.full_over_lora_file_size).toBe(80);
  });

  test("training ratios come from the largest model where full fine-tuning ran", () => {
    const r = computeRatios({ ...measured, training: [measured.training[0]!, { ...measured.training[1]!, full: null }] });
    expect(r.lora_over_full_step_time).toBe(0.25);
    const withOnnx = computeRatios({
      ...measured,
      onnx_training: {
        model: "GPT-2 small",
        batch_size: 4,
        seq_len: 128,
        onnx: { ...step("lora", 1.5, 1), backend: "onnx" as never },
        tfjs: step("lora", 12, 1),
      },
    });
    expect(withOnnx.tfjs_over_onnx_lora_step_time).toBe(8);
  });

  test("fall back to the embedded base when the large model was not measured", () => {
    const r = computeRatios({ ...measured, training: [measured.training[0]!], latency: [measured.latency[0]!] });
    expect(r.lora_over_full_step_time).toBe(0.25);
    expect(r.merged_over_base_latency).toBe(5);
  });

  test("targets say met or missed against the issue's bounds, and unmeasured ratios are missed", () => {
    const checks = TARGETS.map((t) => t.check(computeRatios(measured)));
    expect(Object.fromEntries(checks.map((c) => [c.ratio, c.met]))).toEqual({
      merged_over_base_latency: true,
      unmerged_over_base_latency: true,
      lora_over_full_step_time: true,
      lora_over_full_peak_memory: true,
      merge_over_copy_bandwidth: true,
      lora_over_full_eval_loss: false,
      tfjs_over_onnx_lora_step_time: false,
    });
    const none = TARGETS[0]!.check({});
    expect(none).toMatchObject({ value: null, met: false });
  });

  test("spread is the median with min and max", () => {
    expect(spread([3, 1, 2])).toEqual({ median: 2, min: 1, max: 3, n: 3 });
    expect(spread([4, 1, 2, 3])).toEqual({ median: 2.5, min: 1, max: 4, n: 4 });
    expect(() => spread([])).toThrow();
  });
});
