import { ensure } from "../errors/lowrank-error.js";
import { SeededRandom } from "../math/random.js";

/** One training or evaluation example: token ids, and a class label for sequence classification. */
export interface TrainingExample {
  ids: number[];
  /**
   * Causal LM: the label of each token, aligned with `ids`; −100 where there is no loss (a prompt,
   * a user turn). Absent: the ids (every token trained).
   */
  labels?: number[];
  label?: number;
  /**
   * A packed sequence (packExamples): the example each token belongs to, and its position within
   * that example. Attention stays within a segment and positions restart at 0 in each.
   */
  segments?: number[];
  positions?: number[];
}

/**
 * A padded batch: ids and mask [b][s]; labels [b][s] are each example's `labels` (else its ids),
 * −100 on padding (causal LM); classes are the class ids (seq-cls).
 */
export interface Batch {
  ids: number[][];
  mask: number[][];
  labels: number[][];
  classes: number[];
  /** Real (non-padding) tokens in the batch. */
  tokens: number;
  /** For packed examples: segments (−1 on padding) and positions (0 on padding), [b][s]. */
  segments?: number[][];
  positions?: number[][];
}

/** Right-pads examples to the longest one. */
export function makeBatch(examples: readonly TrainingExample[], padTokenId: number): Batch {
  const width = Math.max(...examples.map((e) => e.ids.length));
  const ids: number[][] = [];
  const mask: number[][] = [];
  const labels: number[][] = [];
  const packed = examples.some((e) => e.segments !== undefined);
  const segments: number[][] = [];
  const positions: number[][] = [];
  let tokens = 0;
  for (const e of examples) {
    const pad = width - e.ids.length;
    ids.push([...e.ids, ...new Array<number>(pad).fill(padTokenId)]);
    mask.push([...new Array<number>(e.ids.length).fill(1), ...new Array<number>(pad).fill(0)]);
    ensure(
      !e.labels || e.labels.length === e.ids.length,
      "BACKEND_INVALID",
      () => `makeBatch: an example has ${e.ids.length} ids but ${e.labels?.length} labels`,
    );
    labels.push([...(e.labels ?? e.ids), ...new Array<number>(pad).fill(-100)]);
    if (packed) {
      // An unpacked example in a packed batch is one segment from position 0.
      segments.push([...(e.segments ?? e.ids.map(() => 0)), ...new Array<number>(pad).fill(-1)]);
      positions.push([...(e.positions ?? e.ids.map((_, i) => i)), ...new Array<number>(pad).fill(0)]);
    }
    tokens += e.ids.length;
  }
  const batch: Batch = { ids, mask, labels, classes: examples.map((e) => e.label ?? 0), tokens };
  return packed ? { ...batch, segments, positions } : batch;
}

/**
 * Which examples form micro-batch `index`: epochs are seeded permutations (so the order depends
 * only on the seed and the index, which makes resuming exact).
 */
export class BatchOrder {
  private cache: { epoch: number; order: number[] } | undefined;
  readonly batchesPerEpoch: number;

  constructor(
    private readonly count: number,
    private readonly batchSize: number,
    private readonly seed: number,
  ) {
    this.batchesPerEpoch = Math.ceil(count / batchSize);
  }

  private permutation(epoch: number): number[] {
    if (this.cache?.epoch === epoch) return this.cache.order;
    const rng = new SeededRandom(this.seed * 1_000_003 + epoch);
    const order = Array.from({ length: this.count }, (_, i) => i);
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(rng.next() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    this.cache = { epoch, order };
    return order;
  }

  /** Example indexes of micro-batch `index` (0-based over the whole run), and its epoch. */
  indexes(index: number): { epoch: number; items: number[] } {
    const epoch = Math.floor(index / this.batchesPerEpoch);
    const within = index % this.batchesPerEpoch;
    return { epoch, items: this.permutation(epoch).slice(within * this.batchSize, (within + 1) * this.batchSize) };
  }
}

/**
 * Causal-LM targets of a batch as flat [b·s] arrays: position t predicts label t+1; a position whose
 * next label is −100 (padding, a prompt token) or that is last in its row gets target 0 and weight 0,
 * as the shifted loss of transformers ignores it.
 */
export function causalTargets(labels: readonly (readonly number[])[]): { targets: number[]; weights: number[]; predicted: number } {
  const targets: number[] = [];
  const weights: number[] = [];
  let predicted = 0;
  for (const row of labels) {
    for (let t = 0; t < row.length; t++) {
      const next = t + 1 < row.length ? row[t + 1]! : -100;
      targets.push(next < 0 ? 0 : next);
      weights.push(next < 0 ? 0 : 1);
      if (next >= 0) predicted += 1;
    }
  }
  return { targets, weights, predicted };
}

/** One micro-batch of an optimizer step: its index over the whole run (the dropout seed's), its epoch and its padded batch. */
export interface MicroBatch {
  index: number;
  epoch: number;
  batch: Batch;
}

/**
 * Which examples each optimizer step of a run sees: a seeded order per epoch (BatchOrder), gradient
 * accumulation (step·accumulation + k for k < accumulation), padding with `padTokenId`, and the
 * number of steps (`steps`, else `epochs` — default 1 — over the data). Both backends' trainers take
 * their batches from here, so they see the same examples in the same order.
 */
export class TrainingBatches {
  readonly accumulation: number;
  readonly totalSteps: number;
  private readonly order: BatchOrder;

  constructor(
    private readonly examples: readonly TrainingExample[],
    private readonly options: { batchSize: number; seed: number; padTokenId: number; gradientAccumulation?: number; steps?: number; epochs?: number },
  ) {
    this.accumulation = Math.max(1, options.gradientAccumulation ?? 1);
    this.order = new BatchOrder(examples.length, options.batchSize, options.seed);
    this.totalSteps = options.steps ?? Math.max(1, Math.ceil(((options.epochs ?? 1) * this.order.batchesPerEpoch) / this.accumulation));
  }

  /** The micro-batches of optimizer step `step` (0-based), with the step's token count and its epoch (the last micro-batch's). */
  step(step: number): { batches: MicroBatch[]; tokens: number; epoch: number } {
    const batches: MicroBatch[] = [];
    for (let micro = 0; micro < this.accumulation; micro++) {
      const index = step * this.accumulation + micro;
      const { epoch, items } = this.order.indexes(index);
      batches.push({
        index,
        epoch,
        batch: makeBatch(
          items.map((i) => this.examples[i]!),
          this.options.padTokenId,
        ),
      });
    }
    return { batches, tokens: batches.reduce((n, m) => n + m.batch.tokens, 0), epoch: batches.at(-1)?.epoch ?? 0 };
  }
}
