import { describe, expect, test } from "vitest";
import { copyBandwidthGbPerS, decodeFloorTokensPerSecond } from "./decode-floor.js";
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
      gradient_checkpointing: false,
      lora: step("lora", 1, 100),
      full: step("full", 4, 400) as ReturnType<typeof step> | null,
    },
    {
      model: "GPT-2 small",
      batch_size: 1,
      gradient_accumulation: 1,
      seq_len: 1,
      steps_timed: 1,
      gradient_checkpointing: false,
      lora: step("lora", 3, 200),
      full: step("full", 5, 800) as ReturnType<typeof step> | null,
    },
    {
      model: "GPT-2 small",
      batch_size: 1,
      gradient_accumulation: 1,
      seq_len: 1,
      steps_timed: 1,
      gradient_checkpointing: true,
      lora: step("lora", 4, 150),
      full: step("full", 6, 700) as ReturnType<typeof step> | null,
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
      { method: "lora" as const, eval_loss: 1.2, bleu: 0.3 },
      { method: "lora-all-linear" as const, eval_loss: 1.1, bleu: 0.36 },
      { method: "full" as const, eval_loss: 1.0, bleu: 0.4 },
    ] as never,
  },
};

const generation = {
  model: "GPT-2 small",
  prompts: 8,
  prompt_tokens: 128,
  new_tokens: 32,
  ort_provider: "cpu",
  tfjs_engine: "wasm",
  tfjs_batched: false,
  onnx_seconds: s(4),
  tfjs_seconds: s(30),
  same_tokens_prompts: 8,
};
const decode = {
  model: "GPT-2 small",
  prompt_tokens: 128,
  new_tokens: 32,
  ort_provider: "cpu",
  token_ms: s(50),
  onnx_decode_tokens_per_second: 20,
  weight_bytes: 500e6,
  copy_bandwidth_gb_per_s: 10,
  decode_floor_tokens_per_second: 20 / 0.8,
};

describe("benchmark ratios", () => {
  test("come from the realistic-size model when measured, batch 1 for latency", () => {
    const r = computeRatios(measured);
    expect(r.merged_over_base_latency).toBeCloseTo(1.005, 12);
    expect(r.unmerged_over_base_latency).toBeCloseTo(1.1, 12);
    expect(r.unmerged_over_base_latency_batch8).toBeCloseTo(1.2, 12);
    expect(r.lora_over_full_step_time).toBeCloseTo(0.6, 12);
    expect(r.lora_over_full_peak_memory).toBeCloseTo(0.25, 12);
    // The recomputing row is compared with the holding row of the same model, never with full fine-tuning.
    expect(r.recomputed_over_held_lora_peak_memory).toBeCloseTo(0.75, 12);
    expect(r.recomputed_over_held_lora_step_time).toBeCloseTo(4 / 3, 12);
    expect(r.recomputed_over_held_full_peak_memory).toBeCloseTo(0.875, 12);
    expect(r.merge_over_copy_bandwidth).toBeCloseTo(0.75, 12);
    expect(r.lora_over_full_eval_loss).toBeCloseTo(1.1, 12);
    expect(r.lora_over_full_bleu).toBeCloseTo(0.9, 12);
    expect(r.lora_attention_over_full_eval_loss).toBeCloseTo(1.2, 12);
    expect(r.full_over_lora_trainable_parameters).toBe(100);
    expect(r.full_over_lora_file_size).toBe(80);
  });

  test("training ratios come from the largest model where full fine-tuning ran", () => {
    const r = computeRatios({ ...measured, training: [measured.training[0]!, { ...measured.training[1]!, full: null }, measured.training[2]!] });
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

  test("generation: tfjs time over ONNX Runtime's for the same prompts, and decoding's share of its floor", () => {
    const r = computeRatios({ ...measured, generation, decode });
    expect(r.tfjs_over_onnx_generation_time).toBe(7.5);
    expect(r.decode_over_floor).toBeCloseTo(0.8, 12);
    const unmeasured = computeRatios(measured);
    expect(unmeasured.tfjs_over_onnx_generation_time).toBeUndefined();
    expect(unmeasured.decode_over_floor).toBeUndefined();
  });

  test.each([
    [500e6, 10, 20],
    [10e6, 10, 1000],
    [124_439_808 * 4, 22.82, 45.8],
  ])("the decode floor of %d weight bytes at %d GB/s is %d tokens/s", (bytes, gbps, tokens) => {
    expect(decodeFloorTokensPerSecond(bytes, gbps)).toBeCloseTo(tokens, 1);
  });

  test("copy bandwidth counts the bytes read and the bytes written, as STREAM does", () => {
    expect(copyBandwidthGbPerS(11.41)).toBeCloseTo(22.82, 12);
  });

  test("the decode floor needs the weight bytes", () => {
    expect(() => decodeFloorTokensPerSecond(0, 10)).toThrow(/weight bytes/);
  });

  test("fall back to the embedded base when the large model was not measured", () => {
    const r = computeRatios({ ...measured, training: [measured.training[0]!], latency: [measured.latency[0]!] });
    expect(r.lora_over_full_step_time).toBe(0.25);
    expect(r.merged_over_base_latency).toBe(5);
  });

  test("targets say met or missed against the issue's bounds, and unmeasured ratios are missed", () => {
    const serving = {
      mixed: { model: "GPT-2 small", batch: 8, adapters: 8, rank: 8, past_tokens: 128, single_ms: s(50), mixed_ms: s(55) },
      serving: [1, 16].map((clients) => ({
        clients,
        requests: 8,
        prompt_tokens: 64,
        new_tokens: 32,
        tokens_per_second: 30 * Math.sqrt(clients),
        latency_p50_seconds: 1,
        latency_p95_seconds: 2,
        wall_seconds: 8,
      })),
    };
    const ratios = computeRatios({ ...measured, generation, serving });
    expect(ratios.mixed_over_single_adapter_batch_time).toBeCloseTo(1.1, 12);
    expect(ratios.serving_throughput_concurrent_over_single).toBeCloseTo(4, 12);
    const checks = TARGETS.map((t) => t.check(ratios));
    expect(Object.fromEntries(checks.map((c) => [c.ratio, c.met]))).toEqual({
      merged_over_base_latency: true,
      // 1.1 at batch 1: over issue 17's bound of 1.05.
      unmerged_over_base_latency: false,
      lora_over_full_step_time: true,
      lora_over_full_peak_memory: true,
      merge_over_copy_bandwidth: true,
      lora_over_full_eval_loss: false,
      tfjs_over_onnx_lora_step_time: false,
      mixed_over_single_adapter_batch_time: true,
      tfjs_over_onnx_generation_time: true,
    });
    expect(TARGETS.find((t) => t.ratio === "mixed_over_single_adapter_batch_time")!.check(computeRatios({ ...measured, generation }))).toMatchObject({
      met: false,
      value: null,
    });
    const slow = TARGETS.find((t) => t.ratio === "tfjs_over_onnx_generation_time")!.check(
      computeRatios({ ...measured, generation: { ...generation, tfjs_seconds: s(10) } }),
    );
    expect(slow).toMatchObject({ value: 2.5, target: "≥ 3", met: false });
    const none = TARGETS[0]!.check({});
    expect(none).toMatchObject({ value: null, met: false });
  });

  test("spread is the median with min and max", () => {
    expect(spread([3, 1, 2])).toEqual({ median: 2, min: 1, max: 3, n: 3 });
    expect(spread([4, 1, 2, 3])).toEqual({ median: 2.5, min: 1, max: 4, n: 4 });
    expect(() => spread([])).toThrow();
  });
});
