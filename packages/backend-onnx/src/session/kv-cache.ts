import * as ort from "onnxruntime-node";
import { LowrankError } from "@lowrank/core";
import { TokenDecoder, type DecodeOptions } from "@lowrank/core/internal";
import type { OnnxLoraSession } from "./onnx-lora-session.js";

/** An ONNX decoder exported with a key/value cache the way Optimum exports them for transformers.js. */
export interface KvLayout {
  layers: number;
  kvHeads: number;
  headDim: number;
  /** Whether the graph takes attention_mask ([batch, past + new]) and position_ids ([batch, new]). */
  attentionMask: boolean;
  positionIds: boolean;
}

const PAST = /^past_key_values\.(\d+)\.(key|value)$/;

/**
 * Reads the cache layout from a session's inputs: `past_key_values.N.key/value` of shape
 * [batch, kvHeads, past, headDim], answered by outputs `present.N.key/value`. Undefined when the
 * graph has no cache inputs.
 * @throws LowrankError CHECKPOINT_INVALID when the cache inputs are incomplete or their head sizes are not fixed.
 */
export function kvLayoutOf(session: ort.InferenceSession, label: string): KvLayout | undefined {
  const past = session.inputMetadata.filter((m) => PAST.test(m.name));
  if (past.length === 0) return undefined;
  const layers = past.length / 2;
  const first = past[0]!;
  const shape = first.isTensor ? first.shape : [];
  const [kvHeads, headDim] = [shape[1], shape[3]];
  if (!Number.isInteger(layers) || typeof kvHeads !== "number" || typeof headDim !== "number") {
    throw new LowrankError(
      "CHECKPOINT_INVALID",
      `${label}: the key/value cache inputs (past_key_values.N.key/value) are incomplete or their head sizes are not fixed numbers`,
    );
  }
  for (let n = 0; n < layers; n++) {
    for (const part of ["key", "value"]) {
      if (!session.inputNames.includes(`past_key_values.${n}.${part}`) || !session.outputNames.includes(`present.${n}.${part}`)) {
        throw new LowrankError("CHECKPOINT_INVALID", `${label}: layer ${n} has no past_key_values.${n}.${part} input or present.${n}.${part} output`);
      }
    }
  }
  return { layers, kvHeads, headDim, attentionMask: session.inputNames.includes("attention_mask"), positionIds: session.inputNames.includes("position_ids") };
}

/** The cache of `batch` rows and no past (the first call of an Optimum-style decoder). */
export function emptyPast(layout: KvLayout, batch: number): Record<string, ort.Tensor> {
  const past: Record<string, ort.Tensor> = {};
  for (let n = 0; n < layout.layers; n++) {
    for (const part of ["key", "value"])
      past[`past_key_values.${n}.${part}`] = new ort.Tensor("float32", new Float32Array(0), [batch, layout.kvHeads, 0, layout.headDim]);
  }
  return past;
}

const int64 = (rows: readonly (readonly number[])[]): ort.Tensor =>
  new ort.Tensor("int64", BigInt64Array.from(rows.flat().map((x) => BigInt(x))), [rows.length, rows[0]?.length ?? 0]);

/**
 * The feeds of one cached step: `ids` [batch, new] after `pastLength` cached positions, with a mask
 * of ones over past + new and position ids pastLength … pastLength + new − 1 (rows without padding).
 */
export function kvStepFeeds(
  layout: KvLayout,
  ids: readonly (readonly number[])[],
  past: Record<string, ort.Tensor>,
  pastLength: number,
): Record<string, ort.Tensor> {
  const width = ids[0]?.length ?? 0;
  const feeds: Record<string, ort.Tensor> = { input_ids: int64(ids), ...past };
  if (layout.attentionMask) feeds.attention_mask = int64(ids.map(() => Array.from({ length: pastLength + width }, () => 1)));
  if (layout.positionIds) feeds.position_ids = int64(ids.map(() => Array.from({ length: width }, (_, i) => pastLength + i)));
  return feeds;
}

/** The next step's cache from a run's `present.N.*` outputs. */
export function presentAsPast(layout: KvLayout, outputs: ort.InferenceSession.OnnxValueMapType): Record<string, ort.Tensor> {
  const past: Record<string, ort.Tensor> = {};
  for (let n = 0; n < layout.layers; n++) {
    for (const part of ["key", "value"]) past[`past_key_values.${n}.${part}`] = outputs[`present.${n}.${part}`] as ort.Tensor;
  }
  return past;
}

/**
 * Generates with the cache: the prompt once (prefill), then one token per step, each step feeding
 * the previous step's `present` as `past`. `adapter` picks the session's adapter (null: the base).
 * Tokens are chosen by core's TokenDecoder, as on every backend. Returns the new tokens.
 */
export async function generateWithKvCache(
  session: OnnxLoraSession,
  layout: KvLayout,
  prompt: readonly number[],
  options: DecodeOptions & { adapter?: string | null },
): Promise<number[]> {
  const decoder = new TokenDecoder(prompt, options);
  let past = emptyPast(layout, 1);
  let pastLength = 0;
  let input: readonly number[] = prompt;
  while (!decoder.done) {
    const outputs = await session.run(kvStepFeeds(layout, [input], past, pastLength), { adapter: options.adapter });
    const logits = outputs.logits as ort.Tensor | undefined;
    if (!logits) throw new LowrankError("CHECKPOINT_INVALID", "the decoder has no logits output");
    const vocab = logits.dims[2]!;
    const data = logits.data as Float32Array;
    past = presentAsPast(layout, outputs);
    pastLength += input.length;
    input = [decoder.next(data.subarray(data.length - vocab))];
  }
  return decoder.produced;
}

/**
 * Generates with a decoder exported without a cache (input_ids → logits, e.g. torch.onnx.export with
 * use_cache off): each step runs the whole sequence so far and takes the last position's logits —
 * the same tokens as with a cache, one full forward per token. attention_mask (ones) and
 * position_ids (0 … n − 1) are fed when the graph takes them. `adapter` as in generateWithKvCache.
 */
export async function generateWithoutCache(
  session: OnnxLoraSession,
  prompt: readonly number[],
  options: DecodeOptions & { adapter?: string | null },
): Promise<number[]> {
  const decoder = new TokenDecoder(prompt, options);
  const inputs = session.modelInputs();
  const sequence = [...prompt];
  while (!decoder.done) {
    const feeds: Record<string, ort.Tensor> = { input_ids: int64([sequence]) };
    if (inputs.includes("attention_mask")) feeds.attention_mask = int64([sequence.map(() => 1)]);
    if (inputs.includes("position_ids")) feeds.position_ids = int64([sequence.map((_, i) => i)]);
    const outputs = await session.run(feeds, { adapter: options.adapter });
    const logits = (outputs.logits ?? Object.values(outputs)[0]) as ort.Tensor | undefined;
    if (logits?.dims.length !== 3) throw new LowrankError("CHECKPOINT_INVALID", "the decoder has no logits output [batch, seq, vocab]");
    const vocab = logits.dims[2]!;
    const data = logits.data as Float32Array;
    sequence.push(decoder.next(data.subarray(data.length - vocab)));
  }
  return decoder.produced;
}

/**
 * Generates for several prompts of different lengths in one batch, as transformers batches them:
 * prompts left-padded (pad positions masked out of attention, position ids counted over real tokens
 * only), then one token per row per step. Each row has its own TokenDecoder seeded with `seed`, so a
 * row's tokens are those it gets alone. `adapters` gives each row its adapter (null: the base): rows
 * with different adapters share the batch (the session runs each adapter's rows as one group).
 * Rows that finished keep being fed their last token; their output is ignored. Returns each row's new tokens.
 */
export async function generateBatchWithKvCache(
  session: OnnxLoraSession,
  layout: KvLayout,
  prompts: readonly (readonly number[])[],
  options: DecodeOptions & { adapters?: readonly (string | null)[] },
): Promise<number[][]> {
  if (!layout.attentionMask || !layout.positionIds) {
    throw new LowrankError("USAGE", "batched generation needs a decoder with attention_mask and position_ids inputs (to left-pad prompts)");
  }
  const decoders = prompts.map((p) => new TokenDecoder(p, options));
  const width = Math.max(...prompts.map((p) => p.length));
  const pad = (p: readonly number[]) => [...Array.from({ length: width - p.length }, () => 0), ...p];
  let mask = prompts.map((p) => [...Array.from({ length: width - p.length }, () => 0), ...p.map(() => 1)]);
  let ids = prompts.map(pad);
  // transformers: position_ids = cumsum(mask) − 1, with padded positions set to 1.
  let positions = mask.map((row) => {
    let seen = 0;
    return row.map((m) => (m ? seen++ : 1));
  });
  let past = emptyPast(layout, prompts.length);
  const names = options.adapters ?? prompts.map(() => null);
  if (names.length !== prompts.length) throw new LowrankError("USAGE", `adapters has ${names.length} entries for ${prompts.length} prompts`);
  while (!decoders.every((d) => d.done)) {
    const feeds: Record<string, ort.Tensor> = { input_ids: int64(ids), attention_mask: int64(mask), position_ids: int64(positions), ...past };
    const outputs = new Set(names).size === 1 ? await session.run(feeds, { adapter: names[0] ?? null }) : await session.runMixed(feeds, names);
    const logits = outputs.logits as ort.Tensor | undefined;
    if (!logits) throw new LowrankError("CHECKPOINT_INVALID", "the decoder has no logits output");
    const [, steps, vocab] = logits.dims as [number, number, number];
    const data = logits.data as Float32Array;
    const next = decoders.map((d, row) => {
      const last = (row * steps + steps - 1) * vocab;
      return d.done ? (ids[row]!.at(-1) ?? 0) : d.next(data.subarray(last, last + vocab));
    });
    past = presentAsPast(layout, outputs);
    positions = positions.map((row) => [(row.at(-1) ?? 0) + 1]);
    mask = mask.map((row) => [...row, 1]);
    ids = next.map((t) => [t]);
  }
  return decoders.map((d) => d.produced);
}
