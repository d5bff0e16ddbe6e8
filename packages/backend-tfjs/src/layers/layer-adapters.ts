import * as tf from "@tensorflow/tfjs";
import { LowrankError } from "@lowrank/core";
import type { ForwardContext, LoraBranch } from "./lora-branch.js";

/** A branch this forward pass applies, and (mixed batches) the rows it applies to: [batch] of 0/1. */
export interface ActiveBranch {
  name: string;
  branch: LoraBranch;
  rows?: tf.Tensor1D;
}

/**
 * The LoRA branches of one layer by adapter name, and which of them the layer applies — PEFT's
 * per-layer `lora_A`/`lora_B` dictionaries with `active_adapters`: several active branches are
 * summed; a mixed batch (ForwardContext.adapterRows) applies each to its own rows.
 */
export class LayerAdapters {
  private readonly branches = new Map<string, LoraBranch>();
  active: string[] = [];

  constructor(private readonly layerName: string) {}

  /** One adapter's branch under the name "default" (the single-adapter API), or none. */
  get single(): LoraBranch | undefined {
    return this.active.length === 1 ? this.branches.get(this.active[0]!) : undefined;
  }

  set single(branch: LoraBranch | undefined) {
    this.branches.clear();
    this.active = [];
    if (branch) this.add("default", branch, true);
  }

  add(name: string, branch: LoraBranch, activate: boolean): void {
    this.branches.set(name, branch);
    if (activate && !this.active.includes(name)) this.active.push(name);
  }

  /** Removes a branch (and its activation); returns it for disposal. */
  delete(name: string): LoraBranch | undefined {
    const branch = this.branches.get(name);
    this.branches.delete(name);
    this.active = this.active.filter((n) => n !== name);
    return branch;
  }

  get(name: string): LoraBranch | undefined {
    return this.branches.get(name);
  }

  has(name: string): boolean {
    return this.branches.has(name);
  }

  /** Active branches in activation order (those this layer has). */
  activeBranches(): ActiveBranch[] {
    return this.active.flatMap((name) => {
      const branch = this.branches.get(name);
      return branch ? [{ name, branch }] : [];
    });
  }

  /** What this pass applies: the mixed batch's per-row adapters when given, else the active ones. */
  forPass(ctx: ForwardContext, batch: number): ActiveBranch[] {
    if (!ctx.adapterRows) return this.activeBranches();
    const out: ActiveBranch[] = [];
    for (const [name, rows] of ctx.adapterRows) {
      const branch = this.branches.get(name);
      if (!branch) continue;
      if (rows.shape[0] !== batch) {
        throw new LowrankError(
          "USAGE",
          `${this.layerName}: a mixed batch names an adapter per row (${rows.shape[0]} rows) but this layer sees ${batch} rows; this module cannot ` +
            `take per-row adapters`,
        );
      }
      out.push({ name, branch, rows });
    }
    return out;
  }
}

/** delta [b·n, out] masked to the rows of `rows` [b]: rows not named keep exactly zero. */
export function maskRows(delta: tf.Tensor2D, rows: tf.Tensor1D | undefined, batch: number): tf.Tensor2D {
  if (!rows) return delta;
  const [n, out] = delta.shape;
  return tf.mul(delta.reshape([batch, n / batch, out]), rows.reshape([batch, 1, 1])).reshape([n, out]) as tf.Tensor2D;
}
