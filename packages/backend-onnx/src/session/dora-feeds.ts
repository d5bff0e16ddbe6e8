import * as ort from "onnxruntime-node";
import { LowrankError, type LoraFactors } from "@lowrank/core";
import { doraOutputScale } from "@lowrank/core/internal";
import type { LoraSlot } from "../onnx/add-lora-slots.js";
import type { GraphProto } from "../onnx/onnx-codec.js";
import { readFloatTensor } from "../onnx/tensor-data.js";

/** The neutral DoRA inputs of a slot: factor 1 and shift 0 (the base, or a plain LoRA adapter). */
export function neutralDoraFeeds(slot: LoraSlot): Record<string, ort.Tensor> {
  if (!slot.dora) return {};
  return {
    [slot.dora.scaleInput]: new ort.Tensor("float32", new Float32Array(slot.outFeatures).fill(1), [slot.outFeatures]),
    [slot.dora.shiftInput]: new ort.Tensor("float32", new Float32Array(slot.outFeatures), [slot.outFeatures]),
  };
}

/**
 * A DoRA module's inputs for its slot: the factor m/‖W + ΔW‖ from core (doraOutputScale, on the
 * graph's stored weight) and, when the node's output includes its bias, the shift (1 − factor)·bias
 * that keeps the bias unscaled. `replacedBias` is the adapter's own copy of that bias, if it has one.
 * @throws LowrankError ADAPTER_INVALID when the slot was made without DoRA inputs.
 */
export function doraFeeds(params: {
  slot: LoraSlot;
  factors: LoraFactors;
  graph: GraphProto;
  modelDir: string;
  adapterName: string;
  replacedBias?: Float32Array;
}): Record<string, ort.Tensor> {
  const { slot, factors } = params;
  if (!slot.dora) {
    throw new LowrankError(
      "ADAPTER_INVALID",
      `adapter "${params.adapterName}" is DoRA ("${slot.module}"), but this session's slot has no DoRA inputs; create the session with this adapter`,
    );
  }
  const weight = params.graph.initializer.find((t) => t.name === slot.location.initializer.name);
  if (!weight) throw new LowrankError("CHECKPOINT_INVALID", `module "${slot.module}": its weight "${slot.location.initializer.name}" is not in the graph`);
  const factor = doraOutputScale(readFloatTensor(weight, params.modelDir), factors);
  const biasInit = slot.dora.bias === undefined ? undefined : params.graph.initializer.find((t) => t.name === slot.dora!.bias);
  const bias = params.replacedBias ?? (biasInit ? readFloatTensor(biasInit, params.modelDir) : undefined);
  const shift = new Float32Array(slot.outFeatures);
  if (bias) for (let o = 0; o < slot.outFeatures; o++) shift[o] = (1 - factor[o]!) * bias[o]!;
  return {
    [slot.dora.scaleInput]: new ort.Tensor("float32", Float32Array.from(factor), [slot.outFeatures]),
    [slot.dora.shiftInput]: new ort.Tensor("float32", shift, [slot.outFeatures]),
  };
}
