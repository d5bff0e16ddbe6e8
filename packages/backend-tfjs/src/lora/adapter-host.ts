import * as tf from "@tensorflow/tfjs";
import { bindAdapter, LowrankError, toFloat32, type BoundAdapter, type LoraAdapter, type Logger } from "@lowrank/core";
import { inferenceContext, type LoraBranch } from "../layers/lora-branch.js";
import type { ForwardInput, ForwardOutput, TfjsModel } from "../models/model.js";
import { createBranches, disposeBranch, layerOf, setMerged } from "./attach-adapter.js";

interface HostedAdapter {
  adapter: LoraAdapter;
  bound: BoundAdapter;
  branches: Map<string, LoraBranch>;
  /** Base tensor key → this adapter's whole replacement (modules_to_save, trained biases). */
  replacements: Map<string, tf.Tensor>;
  dora: boolean;
}

/** PEFT's name for the base model's rows in a mixed batch. */
export const BASE_ROWS = "__base__";

/**
 * Many adapters over one model — PEFT's multi-adapter PeftModel: load adapters under names, choose
 * the active one (or several, whose deltas add up), disable them all (the exact base model), delete
 * one, merge the active ones into the weights and unmerge them, and run a mixed batch in which every
 * row names its adapter (or the base).
 */
export class AdapterHost {
  private readonly hosted = new Map<string, HostedAdapter>();
  /** Base values of the tensors some adapter replaces, put back when that adapter is not active. */
  private readonly baseTensors = new Map<string, tf.Tensor>();
  private activeNames: string[] = [];
  private disabled = false;
  private merged = false;

  constructor(
    readonly model: TfjsModel,
    private readonly logger?: Logger,
  ) {}

  /** Adapter names in load order. */
  get names(): string[] {
    return [...this.hosted.keys()];
  }

  get active(): string[] {
    return [...this.activeNames];
  }

  get isMerged(): boolean {
    return this.merged;
  }

  /** Loads an adapter under `name`; the first one loaded becomes active (as PEFT's from_pretrained). */
  load(name: string, adapter: LoraAdapter): void {
    if (this.hosted.has(name)) throw new LowrankError("USAGE", `adapter "${name}" is already loaded; delete it first or choose another name`);
    if (name === BASE_ROWS) throw new LowrankError("USAGE", `"${BASE_ROWS}" names the base model's rows in a mixed batch; it cannot name an adapter`);
    if (this.merged) throw new LowrankError("USAGE", `cannot load adapter "${name}" while adapters are merged; unmerge first`);
    const bound = bindAdapter(adapter, this.model.description, { logger: this.logger, label: `adapter "${name}"` });
    const branches = createBranches(this.model, adapter, bound, false);
    for (const [module, branch] of branches) layerOf(this.model, module).adapters.add(name, branch, false);
    const replacements = new Map<string, tf.Tensor>();
    for (const [key, tensor] of bound.replacements) {
      if (!this.baseTensors.has(key)) this.baseTensors.set(key, this.model.store.get(key));
      replacements.set(key, tf.tensor(toFloat32(tensor, key), tensor.shape, "float32"));
    }
    this.hosted.set(name, { adapter, bound, branches, replacements, dora: bound.modules.some((m) => m.factors.magnitude) });
    if (this.activeNames.length === 0) this.setActive(name);
  }

  /**
   * Chooses the active adapters (PEFT's set_adapter). Several are summed; at most one of them may
   * replace whole modules (PEFT's modules_to_save has one active copy).
   */
  setActive(names: string | string[]): void {
    const list = typeof names === "string" ? [names] : [...names];
    for (const name of list) this.require(name);
    const replacing = list.filter((n) => this.hosted.get(n)!.replacements.size > 0);
    if (replacing.length > 1)
      throw new LowrankError(
        "USAGE",
        `adapters ${replacing.map((n) => `"${n}"`).join(" and ")} both replace whole modules (modules_to_save); only one of them can be active`,
      );
    if (this.merged) throw new LowrankError("USAGE", "cannot change the active adapters while they are merged; unmerge first");
    this.activeNames = list;
    this.apply();
  }

  /** Runs the exact base model until enable() (PEFT's disable_adapter); merged adapters are unmerged. */
  disable(): void {
    if (this.merged) this.unmerge();
    this.disabled = true;
    this.apply();
  }

  enable(): void {
    this.disabled = false;
    this.apply();
  }

  /** Removes an adapter and frees its tensors; when it was active, the first remaining one becomes active. */
  delete(name: string): void {
    const hosted = this.require(name);
    if (this.merged && this.activeNames.includes(name)) throw new LowrankError("USAGE", `adapter "${name}" is merged; unmerge before deleting it`);
    for (const module of hosted.branches.keys()) layerOf(this.model, module).adapters.delete(name);
    for (const branch of hosted.branches.values()) disposeBranch(branch);
    this.hosted.delete(name);
    this.activeNames = this.activeNames.filter((n) => n !== name);
    if (this.activeNames.length === 0 && this.hosted.size > 0) this.activeNames = [this.names[0]!];
    this.apply();
    for (const t of hosted.replacements.values()) t.dispose();
  }

  /** Folds the active adapters into the weights (PEFT's merge_adapter): runs at the base model's speed. */
  merge(options: { safe?: boolean } = {}): void {
    if (this.disabled) throw new LowrankError("USAGE", "adapters are disabled; enable them before merging");
    if (this.merged) return;
    setMerged(this.model, true, options);
    this.merged = true;
  }

  /** Restores the exact pre-merge weights. */
  unmerge(): void {
    setMerged(this.model, false);
    this.merged = false;
  }

  /**
   * A forward pass. With `adapterNames` (one per row: an adapter name, or null / "__base__" for the
   * base model), each row runs with its own adapter — the same outputs as running it alone.
   */
  forward(input: ForwardInput, options: { adapterNames?: (string | null)[] } = {}): ForwardOutput {
    if (!options.adapterNames) return this.model.forward(input, inferenceContext());
    const rows = input.inputIds.shape[0];
    if (options.adapterNames.length !== rows)
      throw new LowrankError("USAGE", `adapterNames has ${options.adapterNames.length} entries for a batch of ${rows} rows`);
    if (this.merged) throw new LowrankError("USAGE", "a mixed batch needs unmerged adapters; unmerge first");
    const named = [...new Set(options.adapterNames.filter((n): n is string => n !== null && n !== BASE_ROWS))];
    for (const name of named) {
      const hosted = this.require(name);
      if (hosted.dora) throw new LowrankError("USAGE", `adapter "${name}" is DoRA; a mixed batch supports plain LoRA (as in PEFT)`);
      if (hosted.replacements.size > 0)
        throw new LowrankError(
          "USAGE",
          `adapter "${name}" replaces whole modules (modules_to_save); a mixed batch adds low-rank deltas per row only — run its rows on their own`,
        );
    }
    const replacing = this.activeNames.filter((n) => this.hosted.get(n)!.replacements.size > 0);
    if (!this.disabled && replacing.length > 0)
      throw new LowrankError(
        "USAGE",
        `the active adapter "${replacing[0]}" replaces whole modules, which would apply to every row; disable adapters or activate another before a ` +
          `mixed batch`,
      );
    const masks = new Map(
      named.map((name) => [
        name,
        tf.tensor1d(
          options.adapterNames!.map((n) => (n === name ? 1 : 0)),
          "float32",
        ),
      ]),
    );
    try {
      return this.model.forward(input, { ...inferenceContext(), adapterRows: masks });
    } finally {
      for (const mask of masks.values()) mask.dispose();
    }
  }

  private require(name: string): HostedAdapter {
    const hosted = this.hosted.get(name);
    if (!hosted) throw new LowrankError("USAGE", `adapter "${name}" is not loaded (loaded: ${this.names.join(", ") || "none"})`);
    return hosted;
  }

  /** Puts the active set into every layer and the active adapter's replacements into the store. */
  private apply(): void {
    const active = this.disabled ? [] : this.activeNames;
    for (const layer of [...this.model.linears.values(), ...this.model.embeddings.values()]) layer.adapters.active = [...active];
    for (const [key, base] of this.baseTensors) {
      const owner = active.map((n) => this.hosted.get(n)!).find((h) => h.replacements.has(key));
      const value = owner ? owner.replacements.get(key)! : base;
      if (this.model.store.get(key) !== value) this.model.store.set(key, value);
    }
  }
}
