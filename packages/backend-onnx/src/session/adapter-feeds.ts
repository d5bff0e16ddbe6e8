import * as ort from "onnxruntime-node";
import { LowrankError } from "@lowrank/core";
import type { LoraSlot } from "../onnx/add-lora-slots.js";

export type Feeds = Record<string, ort.Tensor>;

/** Aᵀ ([in, r]) and scaling·Bᵀ ([r, out]) from PEFT's A [r, in] and B [out, r]. */
export function slotTensors(slot: LoraSlot, A: Float32Array, B: Float32Array, r: number, scaling: number): [ort.Tensor, ort.Tensor] {
  const at = new Float32Array(slot.inFeatures * r);
  for (let k = 0; k < r; k++) for (let i = 0; i < slot.inFeatures; i++) at[i * r + k] = A[k * slot.inFeatures + i]!;
  const bt = new Float32Array(r * slot.outFeatures);
  for (let o = 0; o < slot.outFeatures; o++) for (let k = 0; k < r; k++) bt[k * slot.outFeatures + o] = scaling * B[o * r + k]!;
  return [new ort.Tensor("float32", at, [slot.inFeatures, r]), new ort.Tensor("float32", bt, [r, slot.outFeatures])];
}

/**
 * Several adapters' slot inputs as one: Σ sᵢ·Bᵢ·Aᵢ = [s₁B₁ | s₂B₂ | …]·[A₁; A₂; …], so the ranks are
 * concatenated — Aᵀ side by side along r, scaling·Bᵀ stacked along r. Exact, and one run.
 */
export function concatSlotFeeds(slots: Iterable<LoraSlot>, each: readonly Feeds[]): Feeds {
  const out: Feeds = {};
  for (const slot of slots) {
    // Every loaded adapter's feeds hold both inputs of every slot (zeros where it does not adapt).
    const as = each.map((f) => f[slot.inputA]!);
    const bs = each.map((f) => f[slot.inputB]!);
    const ranks = as.map((a) => a.dims[1]!);
    const r = ranks.reduce((x, y) => x + y, 0);
    const at = new Float32Array(slot.inFeatures * r);
    const bt = new Float32Array(r * slot.outFeatures);
    let offset = 0;
    as.forEach((a, n) => {
      const ra = ranks[n]!;
      const av = a.data as Float32Array;
      for (let i = 0; i < slot.inFeatures; i++) at.set(av.subarray(i * ra, (i + 1) * ra), i * r + offset);
      bt.set(bs[n]!.data as Float32Array, offset * slot.outFeatures);
      offset += ra;
    });
    out[slot.inputA] = new ort.Tensor("float32", at, [slot.inFeatures, r]);
    out[slot.inputB] = new ort.Tensor("float32", bt, [r, slot.outFeatures]);
  }
  return out;
}

type RowData = ort.Tensor["data"] & {
  subarray(begin: number, end: number): ort.Tensor["data"];
  set(source: ArrayLike<unknown>, offset: number): void;
  constructor: new (n: number) => ort.Tensor["data"];
};

/** The given rows (first dimension) of a tensor. */
export function takeRows(tensor: ort.Tensor, rows: readonly number[]): ort.Tensor {
  const size = tensor.dims.slice(1).reduce((a, b) => a * b, 1);
  const data = tensor.data as RowData;
  const out = new (data.constructor as new (n: number) => RowData)(rows.length * size);
  rows.forEach((row, i) => out.set(data.subarray(row * size, (row + 1) * size) as ArrayLike<unknown>, i * size));
  return new ort.Tensor(tensor.type as "float32", out as Float32Array, [rows.length, ...tensor.dims.slice(1)]);
}

/**
 * Puts each group's output rows back at their places in the batch, output by output.
 * @throws LowrankError USAGE for no groups (an empty batch).
 */
export function scatterRows(batch: number, groups: { rows: number[]; outputs: ort.InferenceSession.OnnxValueMapType }[]): Record<string, ort.Tensor> {
  const result: Record<string, ort.Tensor> = {};
  const firstGroup = groups[0];
  if (!firstGroup) throw new LowrankError("USAGE", "a mixed batch needs at least one row");
  for (const name of Object.keys(firstGroup.outputs)) {
    const first = firstGroup.outputs[name] as ort.Tensor;
    const size = first.dims.slice(1).reduce((a, b) => a * b, 1);
    const out = new ((first.data as RowData).constructor as new (n: number) => RowData)(batch * size);
    for (const { rows, outputs } of groups) {
      const tensor = outputs[name] as ort.Tensor;
      if (tensor.dims[0] !== rows.length)
        throw new LowrankError(
          "USAGE",
          `output "${name}" has ${tensor.dims[0]} rows for a group of ${rows.length}; a mixed batch needs outputs with the batch first`,
        );
      const data = tensor.data as RowData;
      rows.forEach((row, i) => out.set(data.subarray(i * size, (i + 1) * size) as ArrayLike<unknown>, row * size));
    }
    result[name] = new ort.Tensor(first.type as "float32", out as Float32Array, [batch, ...first.dims.slice(1)]);
  }
  return result;
}
