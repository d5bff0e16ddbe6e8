import type { BenchResults } from "../bench-results.js";
import { ms, n, table } from "./markdown.js";

/** The page's serving section (issue 19): the mixed-adapter decoding step, then `lowrank serve` by concurrency. */
export function servingSection(results: BenchResults): string[] {
  const { mixed, serving } = results.serving;
  const r = results.ratios;
  const alone = serving[0];
  return [
    `## 3c. Serving many adapters (${mixed.model})`,
    "",
    `One decoding step of a batch of ${mixed.batch} rows after ${mixed.past_tokens} tokens, every row on one r=${mixed.rank} adapter (c_attn), ` +
      `against the same batch with a different adapter on each of its rows (${mixed.adapters} adapters): the session feeds the adapters' factors ` +
      "side by side along r and masks each row to its own columns (S-LoRA / Punica's gather, one pass). Interleaved runs, milliseconds per step.",
    "",
    ...table(
      ["rows' adapters", "ms per step"],
      [
        ["one adapter on every row", ms(mixed.single_ms)],
        [`${mixed.adapters} different adapters`, ms(mixed.mixed_ms)],
      ],
    ),
    "",
    `mixed / single adapter step time: ${(r.mixed_over_single_adapter_batch_time ?? Number.NaN).toFixed(3)} (target ≤ 1.3).`,
    "",
    `\`lowrank serve\` on loopback (the \`/v1/completions\` API over HTTP): each client sends requests one after another, each request a ` +
      `${alone?.prompt_tokens ?? "?"}-token prompt and ${alone?.new_tokens ?? "?"} new tokens (greedy), the model chosen in turn among the ` +
      `${mixed.adapters} adapters — so concurrent requests share batches whose rows use different adapters (continuous batching).`,
    "",
    ...table(
      ["clients", "requests", "new tokens/s", "latency p50 (s)", "latency p95 (s)", "wall (s)"],
      serving.map((s) => [
        n(s.clients),
        n(s.requests),
        s.tokens_per_second.toFixed(1),
        s.latency_p50_seconds.toFixed(2),
        s.latency_p95_seconds.toFixed(2),
        s.wall_seconds.toFixed(1),
      ]),
    ),
    "",
    `Throughput with ${serving.at(-1)?.clients ?? "?"} clients over one request at a time: ` +
      `${(r.serving_throughput_concurrent_over_single ?? Number.NaN).toFixed(2)}×.`,
    "",
  ];
}
