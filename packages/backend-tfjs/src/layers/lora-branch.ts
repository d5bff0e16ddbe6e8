import * as tf from "@tensorflow/tfjs";
import type { LoraFactors, WeightLayout } from "@lowrank/core";

/**
 * One module's LoRA factors as tfjs variables (trainable) or tensors (frozen):
 * A [r, in], B [out, r], and DoRA's magnitude [out] when present.
 */
export interface LoraBranch {
  A: tf.Variable | tf.Tensor2D;
  B: tf.Variable | tf.Tensor2D;
  scaling: number;
  dropout: number;
  magnitude?: tf.Variable | tf.Tensor1D;
  /** lora_B.bias (PEFT's lora_bias). */
  bias?: tf.Variable | tf.Tensor1D;
}

/** Run-time switches shared by every layer of a model. */
export interface ForwardContext {
  training: boolean;
  /** Seed for this forward pass's dropout masks (deterministic training). */
  seed: number;
  /** Counter making each dropout call's seed distinct within a pass. */
  dropoutCalls: number;
  /**
   * A mixed batch (PEFT's `adapter_names`): adapter name → [batch] mask of the rows it serves.
   * Rows no adapter names run on the base weights. Overrides the layers' active adapters.
   */
  adapterRows?: Map<string, tf.Tensor1D>;
}

export const inferenceContext = (): ForwardContext => ({ training: false, seed: 0, dropoutCalls: 0 });

/** Dropout that is the identity outside training and deterministic per (seed, call) inside it. */
export function seededDropout(x: tf.Tensor, rate: number, ctx: ForwardContext): tf.Tensor {
  if (!ctx.training || rate <= 0) return x;
  ctx.dropoutCalls += 1;
  return tf.dropout(x, rate, undefined, (ctx.seed * 1_000_003 + ctx.dropoutCalls) % 2_147_483_647);
}

/** A branch's current values as core's LoraFactors, for a base weight of the given shape and layout. */
export function branchFactors(branch: LoraBranch, inFeatures: number, outFeatures: number, layout: WeightLayout): LoraFactors {
  return {
    A: branch.A.dataSync() as Float32Array,
    B: branch.B.dataSync() as Float32Array,
    r: branch.A.shape[0],
    inFeatures,
    outFeatures,
    scaling: branch.scaling,
    layout,
    ...(branch.magnitude ? { magnitude: branch.magnitude.dataSync() as Float32Array } : {}),
    ...(branch.bias ? { loraBias: branch.bias.dataSync() as Float32Array } : {}),
  };
}
