import * as tf from "@tensorflow/tfjs";
import { LowrankError, mergeLora, type LoraFactors, type WeightLayout } from "@lowrank/core";
import { stopGradient } from "./functional.js";
import { frozenMatMul, matMul } from "./mat-mul.js";
import { LayerAdapters, maskRows } from "./layer-adapters.js";
import { branchFactors, seededDropout, type ForwardContext, type LoraBranch } from "./lora-branch.js";
import type { ParamStore } from "./param-store.js";

/**
 * A linear map y = x·Wᵀ + b whose weight lives in the ParamStore in its checkpoint layout (`out_in`
 * for nn.Linear, `in_out` for GPT-2's Conv1D), with LoRA branches by adapter name — PEFT's unmerged
 * forward: y = base(x) + Σ scaling · B·A·dropout(x) over the active branches, DoRA's form for a
 * branch with a magnitude. `merge()` folds the active branches into the stored weight with core's
 * math; `unmerge()` puts the exact original back.
 */
export class LinearLayer {
  readonly adapters: LayerAdapters;
  private original?: { weight: tf.Tensor; bias?: tf.Tensor };

  constructor(
    readonly name: string,
    private readonly store: ParamStore,
    readonly weightKey: string,
    readonly biasKey: string | undefined,
    readonly layout: WeightLayout,
    readonly inFeatures: number,
    readonly outFeatures: number,
  ) {
    this.adapters = new LayerAdapters(name);
  }

  /** The single active branch (single-adapter use); setting it replaces every branch. */
  get lora(): LoraBranch | undefined {
    return this.adapters.single;
  }

  set lora(branch: LoraBranch | undefined) {
    this.adapters.single = branch;
  }

  get weight(): tf.Tensor2D {
    return this.store.get<tf.Tensor2D>(this.weightKey);
  }

  get bias(): tf.Tensor1D | undefined {
    return this.biasKey ? this.store.get<tf.Tensor1D>(this.biasKey) : undefined;
  }

  get merged(): boolean {
    return this.original !== undefined;
  }

  /** x·Wᵀ in LoRA's sense ([n, in] → [n, out]) on the fast kernels (see mat-mul.ts). */
  private project(x: tf.Tensor2D): tf.Tensor2D {
    const weight = this.weight;
    if (weight instanceof tf.Variable && weight.trainable) {
      return matMul(x, (this.layout === "in_out" ? weight : tf.transpose(weight)) as tf.Tensor2D);
    }
    // The forward orientation [in, out] is needed on every pass (cached when the checkpoint stores
    // [out, in]); the backward one only during training, and is then made on the fly rather than
    // kept — a second copy of every frozen weight would not fit large models in wasm's 4 GB.
    const stored = weight;
    return this.layout === "in_out"
      ? frozenMatMul(x, stored, () => tf.transpose(stored) as tf.Tensor2D)
      : frozenMatMul(x, this.store.transposed(this.weightKey), () => stored);
  }

  /** x [..., in] → [..., out]. */
  apply(x: tf.Tensor, ctx: ForwardContext): tf.Tensor {
    const shape = x.shape;
    const x2 = x.reshape([-1, this.inFeatures]) as tf.Tensor2D;
    let y = this.project(x2);
    for (const { branch, rows } of this.merged ? [] : this.adapters.forPass(ctx, shape[0])) {
      const dropped = seededDropout(x2, branch.dropout, ctx) as tf.Tensor2D;
      let delta: tf.Tensor2D = matMul(matMul(dropped, tf.transpose(branch.A) as tf.Tensor2D), tf.transpose(branch.B) as tf.Tensor2D);
      if (branch.bias) delta = tf.add(delta, branch.bias);
      if (branch.magnitude) {
        // DoRA (PEFT 0.12): (m/‖W+ΔW‖ − 1)·(x·Wᵀ) + (m/‖W+ΔW‖)·scaling·(B·A·x), the norm held constant.
        const factor = tf.div(branch.magnitude, stopGradient(this.weightNorm(branch)));
        y = tf.add(y, maskRows(tf.add(tf.mul(tf.sub(factor, 1), this.project(dropped)), tf.mul(factor, tf.mul(delta, branch.scaling))), rows, shape[0]));
      } else {
        y = tf.add(y, maskRows(tf.mul(delta, branch.scaling), rows, shape[0]));
      }
    }
    const bias = this.bias;
    if (bias) y = tf.add(y, bias);
    return y.reshape([...shape.slice(0, -1), this.outFeatures]);
  }

  /** ‖W + scaling·B·A‖ per output feature. */
  private weightNorm(branch: LoraBranch): tf.Tensor1D {
    const deltaOutIn = tf.mul(tf.matMul(branch.B, branch.A), branch.scaling);
    const w = this.layout === "in_out" ? tf.transpose(this.weight) : this.weight;
    return tf.norm(tf.add(w, deltaOutIn), "euclidean", 1) as tf.Tensor1D;
  }

  /** A branch as core's LoraFactors (current variable values): the named one, else the single active one. */
  factors(name?: string): LoraFactors | undefined {
    const branch = name === undefined ? this.lora : this.adapters.get(name);
    return branch && branchFactors(branch, this.inFeatures, this.outFeatures, this.layout);
  }

  /** Folds the active branches (in order) into the stored weight (and bias) with core's merge. */
  merge(options: { safe?: boolean } = {}): void {
    const all = this.adapters.activeBranches().map(({ branch }) => branchFactors(branch, this.inFeatures, this.outFeatures, this.layout));
    if (all.length === 0 || this.merged) return;
    if (all.some((f) => f.loraBias) && !this.bias) {
      throw new LowrankError(
        "ADAPTER_INVALID",
        `${this.name}: cannot merge lora_bias because the base layer has no bias (PEFT refuses this too); run the adapter unmerged`,
      );
    }
    const weight = this.weight.dataSync().slice() as Float32Array;
    const bias = this.bias ? (this.bias.dataSync().slice() as Float32Array) : undefined;
    for (const f of all) mergeLora(weight, f, { safe: options.safe, label: this.name, bias });
    const previousWeight = this.store.set(this.weightKey, tf.tensor(weight, this.weight.shape))!;
    const previousBias = bias && this.biasKey ? this.store.set(this.biasKey, tf.tensor1d(bias)) : undefined;
    this.original = { weight: previousWeight, bias: previousBias };
  }

  /** Restores the exact pre-merge weight and bias. */
  unmerge(): void {
    if (!this.original) return;
    this.store.set(this.weightKey, this.original.weight)?.dispose();
    if (this.original.bias && this.biasKey) this.store.set(this.biasKey, this.original.bias)?.dispose();
    this.original = undefined;
  }
}
