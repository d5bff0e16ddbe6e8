import type { BenchResults } from "../bench-results.js";
import { mb, ms, n, s3, table } from "./markdown.js";

/** Reference decode speeds on this machine (GPT-2 small, adapter unmerged, batch 1, greedy), measured outside the suite. */
const REFERENCES = [
  { who: "reference: PyTorch 1.13 + PEFT `generate`, GPT-2 small (adapter unmerged, batch 1)", tokensPerSecond: 15 },
  { who: "reference: TensorFlow.js, GPT-2 small (adapter unmerged, batch 1)", tokensPerSecond: 22 },
];

/** Why decoding can beat a floor set by one thread's copy of memory. */
const whyAboveFloor = (weightBytes: number): string =>
  weightBytes < 64e6
    ? `${mb(weightBytes)} of weights fit in the processor's caches, which deliver them faster than memory`
    : "ONNX Runtime reads the weights on every core, which draws more bandwidth than the one-thread copy";

const perSecond = (x: number): string => (x >= 100 ? n(Math.round(x)) : x.toFixed(1));

/** The page's generation section (issue 17): batched generation on both runtimes, then batch-1 decoding beside its floor. */
export function generationSection(results: BenchResults): string[] {
  const g = results.generation;
  const d = results.decode;
  const r = results.ratios;
  const newTokens = g.prompts * g.new_tokens;
  const tfjsHow = g.tfjs_batched ? `one batch of ${g.prompts}` : `\`generate()\` per prompt, the ${g.prompts} one after another`;
  return [
    `## 3b. Generation with an unmerged adapter (${g.model})`,
    "",
    `Greedy generation of ${g.new_tokens} new tokens after each of ${g.prompts} prompts of ${g.prompt_tokens} tokens, with the adapter ` +
      "(r=8 on c_attn) unmerged and the key/value cache on both runtimes; the two are interleaved round by round.",
    "",
    ...table(
      ["runtime", "how", "seconds", "new tokens/s"],
      [
        [
          `ONNX Runtime (${g.ort_provider})`,
          `one batch of ${g.prompts}, left-padded prompts, the adapter on every row`,
          s3(g.onnx_seconds),
          perSecond(newTokens / g.onnx_seconds.median),
        ],
        [`TensorFlow.js (${g.tfjs_engine})`, tfjsHow, s3(g.tfjs_seconds), perSecond(newTokens / g.tfjs_seconds.median)],
      ],
    ),
    "",
    `tfjs / ONNX Runtime generation time: ${(r.tfjs_over_onnx_generation_time ?? Number.NaN).toFixed(2)}×. ` +
      (g.tfjs_batched ? "" : "TensorFlow.js's `generate()` takes one prompt at a time, so its prompts run one after another. ") +
      `The two runtimes chose the same tokens for ${g.same_tokens_prompts} of ${g.prompts} prompts (greedy on the same weights; a near-tie ` +
      "in random logits can tip either way).",
    "",
    `### Decoding at batch 1 (ONNX Runtime, ${d.model})`,
    "",
    `Milliseconds per new token after the prefill of a ${d.prompt_tokens}-token prompt, ${d.new_tokens} new tokens, adapter unmerged. ` +
      "The floor: each decode step reads every weight once, so no runtime makes more tokens per second than memory delivers the weights — " +
      `the copy bandwidth (${d.copy_bandwidth_gb_per_s.toFixed(2)} GB/s: section 4's in-memory copy, bytes read plus bytes written, as ` +
      `STREAM counts them) over ${mb(d.weight_bytes)} of float32 weights and adapter factors. The copy runs on one thread; ONNX Runtime ` +
      "decodes on every core, which may draw a little more.",
    "",
    ...table(
      ["", "tokens/s", "ms per token"],
      [
        [`ONNX Runtime (${d.ort_provider}), key/value cache`, perSecond(d.onnx_decode_tokens_per_second), ms(d.token_ms)],
        ["floor: copy bandwidth ÷ weight bytes", perSecond(d.decode_floor_tokens_per_second), (1000 / d.decode_floor_tokens_per_second).toFixed(2)],
        ...REFERENCES.map((x) => [x.who, perSecond(x.tokensPerSecond), (1000 / x.tokensPerSecond).toFixed(1)]),
      ],
    ),
    "",
    `Decoding reaches ${(100 * (r.decode_over_floor ?? Number.NaN)).toFixed(0)}% of the floor (\`decode_over_floor\`)` +
      ((r.decode_over_floor ?? 0) > 1 ? `: above it, because ${whyAboveFloor(d.weight_bytes)}. ` : ". ") +
      "The references were measured on this machine outside the suite, on GPT-2 small" +
      (d.model.startsWith("GPT-2 small") ? " (the same shape, pretrained weights)." : "; this run's model is smaller, so compare them with a full run's row."),
    "",
  ];
}
