import * as tf from "@tensorflow/tfjs";
import { mergeLora, type LoraFactors } from "@lowrank/core";
import { branchFactors, type ForwardContext, type LoraBranch } from "./lora-branch.js";
import { matMul } from "./mat-mul.js";
import type { ParamStore } from "./param-store.js";

/**
 * A lookup table [num, dim] in the ParamStore with an optional LoRA branch (PEFT's
 * lora_embedding_A [r, num], lora_embedding_B [dim, r]): out = E[ids] + scaling·A[:, ids]ᵀ·Bᵀ, no
 * dropout on this path (as in PEFT). When the table or branch is being trained the lookup is a
 * one-hot product, whose gradient every backend has (wasm has none for gather).
 */
export class EmbeddingLayer {
  lora?: LoraBranch;
  private original?: tf.Tensor;

  constructor(
    readonly name: string,
    private readonly store: ParamStore,
    readonly weightKey: string,
  ) {}

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
    const branch = this.merged ? undefined : this.lora;
    const oneHot = ctx.training && (tableTrains || branch) ? (tf.oneHot(flat, this.numEmbeddings).toFloat() as tf.Tensor2D) : undefined;
    let out = (tableTrains ? matMul(oneHot!, weight as tf.Tensor2D) : tf.gather(weight, flat)) as tf.Tensor2D;
    if (branch) {
      const picked = (oneHot ? matMul(oneHot, tf.transpose(branch.A) as tf.Tensor2D) : tf.gather(tf.transpose(branch.A), flat)) as tf.Tensor2D;
      out = tf.add(out, tf.mul(matMul(picked, tf.transpose(branch.B) as tf.Tensor2D), branch.scaling));
    }
    return out.reshape([b, s, this.dim]);
  }

  factors(): LoraFactors | undefined {
    return this.lora && branchFactors(this.lora, this.numEmbeddings, this.dim, "in_out");
  }

  merge(_options: { safe?: boolean } = {}): void {
    const f = this.factors();
    if (!f || this.merged) return;
    const weight = this.weight.dataSync().slice() as Float32Array;
    mergeLora(weight, f, { label: this.name });
    this.original = this.store.set(this.weightKey, tf.tensor(weight, this.weight.shape));
  }

  unmerge(): void {
    if (!this.original) return;
    this.store.set(this.weightKey, this.original)?.dispose();
    this.original = undefined;
  }
}
