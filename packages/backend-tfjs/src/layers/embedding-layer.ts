import * as tf from "@tensorflow/tfjs";
import { mergeLora, type LoraFactors } from "@lowrank/core";
import { LayerAdapters, maskRows } from "./layer-adapters.js";
import { branchFactors, type ForwardContext, type LoraBranch } from "./lora-branch.js";
import { matMul } from "./mat-mul.js";
import type { ParamStore } from "./param-store.js";

/**
 * A lookup table [num, dim] in the ParamStore with LoRA branches by adapter name (PEFT's
 * lora_embedding_A [r, num], lora_embedding_B [dim, r]): out = E[ids] + Σ scaling·A[:, ids]ᵀ·Bᵀ
 * over the active branches, no dropout on this path (as in PEFT). When the table or a branch is
 * being trained the lookup is a one-hot product, whose gradient every backend has (wasm has none
 * for gather).
 */
export class EmbeddingLayer {
  readonly adapters: LayerAdapters;
  private original?: tf.Tensor;

  constructor(
    readonly name: string,
    private readonly store: ParamStore,
    readonly weightKey: string,
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

  get numEmbeddings(): number {
    return this.weight.shape[0];
  }

  get dim(): number {
    return this.weight.shape[1];
  }

  get merged(): boolean {
    return this.original !== undefined;
  }

  /** ids [b, s] int32 → [b, s, dim]. */
  apply(ids: tf.Tensor2D, ctx: ForwardContext): tf.Tensor3D {
    const [b, s] = ids.shape;
    const flat = ids.reshape([-1]) as tf.Tensor1D;
    const weight = this.weight;
    const tableTrains = ctx.training && weight instanceof tf.Variable && weight.trainable;
    const branches = this.merged ? [] : this.adapters.forPass(ctx, b);
    const oneHot = ctx.training && (tableTrains || branches.length > 0) ? (tf.oneHot(flat, this.numEmbeddings).toFloat() as tf.Tensor2D) : undefined;
    let out = (tableTrains ? matMul(oneHot!, weight as tf.Tensor2D) : tf.gather(weight, flat)) as tf.Tensor2D;
    for (const { branch, rows } of branches) {
      const picked = (oneHot ? matMul(oneHot, tf.transpose(branch.A) as tf.Tensor2D) : tf.gather(tf.transpose(branch.A), flat)) as tf.Tensor2D;
      out = tf.add(out, maskRows(tf.mul(matMul(picked, tf.transpose(branch.B) as tf.Tensor2D), branch.scaling) as tf.Tensor2D, rows, b));
    }
    return out.reshape([b, s, this.dim]);
  }

  /** A branch as core's LoraFactors: the named one, else the single active one. */
  factors(name?: string): LoraFactors | undefined {
    const branch = name === undefined ? this.lora : this.adapters.get(name);
    return branch && branchFactors(branch, this.numEmbeddings, this.dim, "in_out");
  }

  /** Folds the active branches (in order) into the table with core's merge. */
  merge(options: { safe?: boolean } = {}): void {
    const all = this.adapters.activeBranches().map(({ branch }) => branchFactors(branch, this.numEmbeddings, this.dim, "in_out"));
    if (all.length === 0 || this.merged) return;
    const weight = this.weight.dataSync().slice() as Float32Array;
    for (const f of all) mergeLora(weight, f, { safe: options.safe, label: this.name });
    this.original = this.store.set(this.weightKey, tf.tensor(weight, this.weight.shape));
  }

  unmerge(): void {
    if (!this.original) return;
    this.store.set(this.weightKey, this.original)?.dispose();
    this.original = undefined;
  }
}
