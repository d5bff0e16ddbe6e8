import * as tf from "@tensorflow/tfjs";
import { bindAdapter, toFloat32, type BoundAdapter, type LoraAdapter, type Logger } from "@lowrank/core";
import type { EmbeddingLayer } from "../layers/embedding-layer.js";
import type { LinearLayer } from "../layers/linear-layer.js";
import type { LoraBranch } from "../layers/lora-branch.js";
import type { TfjsModel } from "../models/model.js";

/** An adapter living on a model: its LoRA branches, and the base tensors it replaced (to restore). */
export interface AttachedAdapter {
  adapter: LoraAdapter;
  bound: BoundAdapter;
  /** Module name → branch (variables when trainable). */
  branches: Map<string, LoraBranch>;
  /** Base tensor key → the trainable or replacement tensor now in the store. */
  replaced: Map<string, tf.Tensor>;
  /** Base tensor key → the original tensor, put back by detachAdapter. */
  originals: Map<string, tf.Tensor>;
}

function asTensor(values: Float32Array, shape: number[], trainable: boolean, name: string): tf.Tensor {
  const t = tf.tensor(values, shape, "float32");
  if (!trainable) return t;
  const v = tf.variable(t, true, `${name}#${Math.random().toString(36).slice(2)}`);
  t.dispose();
  return v;
}

/** The linear or embedding layer of a module. */
export function layerOf(model: TfjsModel, name: string): LinearLayer | EmbeddingLayer {
  const layer = model.linears.get(name) ?? model.embeddings.get(name);
  if (!layer) throw new Error(`tfjs model has no layer "${name}"`);
  return layer;
}

/** One LoRA branch per bound module (variables when trainable), by module name. */
export function createBranches(model: TfjsModel, adapter: LoraAdapter, bound: BoundAdapter, trainable: boolean): Map<string, LoraBranch> {
  const branches = new Map<string, LoraBranch>();
  for (const { plan, factors } of bound.modules) {
    layerOf(model, plan.name);
    branches.set(plan.name, {
      A: asTensor(factors.A, [factors.r, factors.inFeatures], trainable, `${plan.name}.lora_A`) as tf.Tensor2D,
      B: asTensor(factors.B, [factors.outFeatures, factors.r], trainable, `${plan.name}.lora_B`) as tf.Tensor2D,
      scaling: factors.scaling,
      dropout: adapter.config.lora_dropout,
      ...(factors.magnitude ? { magnitude: asTensor(factors.magnitude, [factors.outFeatures], trainable, `${plan.name}.magnitude`) as tf.Tensor1D } : {}),
      ...(factors.loraBias ? { bias: asTensor(factors.loraBias, [factors.outFeatures], trainable, `${plan.name}.lora_B.bias`) as tf.Tensor1D } : {}),
    });
  }
  return branches;
}

/** Frees a branch's tensors. */
export function disposeBranch(branch: LoraBranch): void {
  for (const t of [branch.A, branch.B, branch.magnitude, branch.bias]) t?.dispose();
}

/**
 * Puts an adapter onto a model with core's binding (PEFT's targeting, scalings and shape checks):
 * each adapted linear or embedding layer gets a LoRA branch, and modules_to_save / trained biases
 * replace the base tensors. With `trainable`, factors and replaced tensors are variables.
 * @throws LowrankError from core when the adapter does not fit the model.
 */
export function attachAdapter(model: TfjsModel, adapter: LoraAdapter, options: { trainable?: boolean; logger?: Logger } = {}): AttachedAdapter {
  const trainable = options.trainable ?? false;
  const bound = bindAdapter(adapter, model.description, { logger: options.logger, label: "adapter" });
  const branches = createBranches(model, adapter, bound, trainable);
  for (const [name, branch] of branches) layerOf(model, name).lora = branch;
  const replaced = new Map<string, tf.Tensor>();
  const originals = new Map<string, tf.Tensor>();
  for (const [key, tensor] of bound.replacements) {
    const value = asTensor(toFloat32(tensor, key), tensor.shape, trainable, key);
    const previous = model.store.set(key, value);
    if (previous) originals.set(key, previous);
    replaced.set(key, value);
  }
  return { adapter, bound, branches, replaced, originals };
}

/** Takes an adapter off: branches removed, replaced base tensors restored, its tensors disposed. */
export function detachAdapter(model: TfjsModel, attached: AttachedAdapter): void {
  for (const name of attached.branches.keys()) {
    const layer = model.linears.get(name) ?? model.embeddings.get(name);
    if (!layer) continue;
    if (layer.merged) layer.unmerge();
    layer.lora = undefined;
  }
  for (const branch of attached.branches.values()) disposeBranch(branch);
  for (const [key, original] of attached.originals) model.store.set(key, original)?.dispose();
}

/** Merges the active branches of every layer into its weights with core's math (or unmerges). */
export function setMerged(model: TfjsModel, merged: boolean, options: { safe?: boolean } = {}): void {
  for (const layer of [...model.linears.values(), ...model.embeddings.values()]) {
    if (merged) layer.merge(options);
    else layer.unmerge();
  }
}
