import { LowrankError } from "../errors/lowrank-error.js";
import type { TrainingExample } from "./batches.js";

/**
 * Causal-LM examples packed into one sequence of at most `seqLen` tokens. `segments[t]` is the
 * index, within the sequence, of the example token t belongs to, and `positions[t]` its position in
 * that example (from 0): a model trained on it must attend only within a segment and take these
 * positions, as transformers' padding-free training does with `position_ids`.
 */
export interface PackedExample extends TrainingExample {
  labels: number[];
  segments: number[];
  positions: number[];
  /** Which input examples the sequence holds, in order (indexes into the list given to packExamples). */
  sources: number[];
}

/**
 * Packs causal-LM examples into sequences of up to `seqLen` tokens, as TRL's SFTTrainer does with
 * `packing=True` (its default "bfd" strategy): examples longer than `seqLen` are cut to it, then,
 * longest first (ties in input order), each goes into the fullest sequence it still fits in (ties:
 * the one opened first), else opens a new one. Examples are never split. Labels are the examples'
 * own (`labels`, else their ids), but the first label of each example is −100, so that no token
 * learns to predict the next example's first token; the loss on each example stays what it is
 * unpacked (causalTargets never predicts an example's first token).
 * @returns the sequences, in the order they were opened.
 * @throws LowrankError USAGE when an example has a class `label` (packing is for causal LMs) or
 * `seqLen` is not a positive integer.
 */
export function packExamples(examples: readonly TrainingExample[], options: { seqLen: number }): PackedExample[] {
  const { seqLen } = options;
  if (!Number.isInteger(seqLen) || seqLen < 1) throw new LowrankError("USAGE", `packing: \`seqLen\` must be a positive integer, got ${seqLen}`);
  if (examples.some((e) => e.label !== undefined))
    throw new LowrankError("USAGE", "packing: examples with a class `label` (sequence classification) cannot be packed; packing is for causal-LM training");
  const lengths = examples.map((e) => Math.min(e.ids.length, seqLen));
  const order = examples.map((_, i) => i).filter((i) => lengths[i]! > 0);
  order.sort((a, b) => lengths[b]! - lengths[a]! || a - b);
  const sequences: PackedExample[] = [];
  // byFree[r]: the sequences with r tokens of room left (each sequence is in exactly one list).
  const byFree: number[][] = Array.from({ length: seqLen + 1 }, () => []);
  for (const source of order) {
    const length = lengths[source]!;
    let target: number | undefined;
    for (let free = length; free <= seqLen && target === undefined; free++) {
      const bucket = byFree[free]!;
      if (bucket.length === 0) continue;
      let oldest = 0;
      for (let k = 1; k < bucket.length; k++) if (bucket[k]! < bucket[oldest]!) oldest = k;
      target = bucket.splice(oldest, 1)[0];
    }
    if (target === undefined) {
      target = sequences.length;
      sequences.push({ ids: [], labels: [], segments: [], positions: [], sources: [] });
    }
    const sequence = sequences[target]!;
    const example = examples[source]!;
    const ids = example.ids.slice(0, length);
    const labels = (example.labels ?? example.ids).slice(0, length);
    labels[0] = -100;
    const segment = sequence.sources.length;
    sequence.ids.push(...ids);
    sequence.labels.push(...labels);
    for (let t = 0; t < length; t++) {
      sequence.segments.push(segment);
      sequence.positions.push(t);
    }
    sequence.sources.push(source);
    byFree[seqLen - sequence.ids.length]!.push(target);
  }
  return sequences;
}
