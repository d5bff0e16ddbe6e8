import { describe, expect, test } from "vitest";
import type { BenchResults } from "../bench-results.js";
import { generationSection } from "./generation-section.js";

const s = (median: number) => ({ median, min: median * 0.9, max: median * 1.2, n: 3 });
const results = {
  generation: {
    model: "GPT-2 small",
    prompts: 8,
    prompt_tokens: 128,
    new_tokens: 32,
    ort_provider: "cpu",
    tfjs_engine: "wasm",
    tfjs_batched: false,
    onnx_seconds: s(4),
    tfjs_seconds: s(32),
    same_tokens_prompts: 7,
  },
  decode: {
    model: "GPT-2 small",
    prompt_tokens: 128,
    new_tokens: 32,
    ort_provider: "cpu",
    token_ms: s(40),
    onnx_decode_tokens_per_second: 25,
    weight_bytes: 500e6,
    copy_bandwidth_gb_per_s: 12.5,
    decode_floor_tokens_per_second: 25,
  },
  ratios: { tfjs_over_onnx_generation_time: 8, decode_over_floor: 1 },
} as unknown as BenchResults;

describe("the generation section of the benchmark page", () => {
  const text = generationSection(results).join("\n");

  test("compares both runtimes on the same prompts, and says tfjs ran them one after another", () => {
    expect(text).toContain("8 prompts of 128 tokens");
    // 8 × 32 new tokens: 256 / 4 s on ONNX Runtime, 256 / 32 s on tfjs.
    expect(text).toContain("| ONNX Runtime (cpu) | one batch of 8, left-padded prompts, the adapter on every row | 4.000 (3.600–4.800) | 64.0 |");
    expect(text).toContain("| TensorFlow.js (wasm) | `generate()` per prompt, the 8 one after another | 32.000 (28.800–38.400) | 8.0 |");
    expect(text).toContain("tfjs / ONNX Runtime generation time: 8.00×");
    expect(text).toContain("the same tokens for 7 of 8 prompts");
  });

  test("puts batch-1 decoding beside its floor and the reference speeds", () => {
    expect(text).toContain("| ONNX Runtime (cpu), key/value cache | 25.0 | 40.0 (36.0–48.0) |");
    expect(text).toContain("| floor: copy bandwidth ÷ weight bytes | 25.0 | 40.00 |");
    expect(text).toContain("PyTorch 1.13 + PEFT `generate`, GPT-2 small (adapter unmerged, batch 1) | 15.0 |");
    expect(text).toContain("TensorFlow.js, GPT-2 small (adapter unmerged, batch 1) | 22.0 |");
    expect(text).toContain("12.50 GB/s");
    expect(text).toContain("over 500 MB");
    expect(text).toContain("Decoding reaches 100% of the floor (`decode_over_floor`). The references");
    expect(text).toContain("on GPT-2 small (the same shape, pretrained weights).");
  });

  test("explains decoding above the floor (caches, or more cores than the copy), and says when the model is not GPT-2 small", () => {
    const tiny = {
      ...results,
      decode: { ...results.decode, model: "embedded base", weight_bytes: 10e6 },
      ratios: { ...results.ratios, decode_over_floor: 1.2 },
    } as BenchResults;
    const tinyText = generationSection(tiny).join("\n");
    expect(tinyText).toContain("Decoding reaches 120% of the floor (`decode_over_floor`): above it, because 10.00 MB of weights fit in the processor's caches");
    expect(tinyText).toContain("this run's model is smaller");
    const fast = { ...results, ratios: { ...results.ratios, decode_over_floor: 1.3 } } as BenchResults;
    expect(generationSection(fast).join("\n")).toContain("above it, because ONNX Runtime reads the weights on every core");
  });
});
