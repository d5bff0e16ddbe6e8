import * as ort from "onnxruntime-node";
import { LowrankError, onnxAdapterToPeft, silentLogger, type LoraAdapter, type Logger } from "@lowrank/core";
import { decodeOnnxAdapter } from "@lowrank/core/internal";
import { defaultModelDir, dirname, readModelBytes } from "../platform/files.js";
import { addLoraSlots, type LoraSlot } from "../onnx/add-lora-slots.js";
import { decodeModel, encodeModel } from "../onnx/onnx-codec.js";
import { initializersAsInputs } from "../onnx/initializers-as-inputs.js";
import { adapterModules, describeOnnxForAdapter } from "../onnx/onnx-model-description.js";
import { bindRuntimeAdapter, type RuntimeTarget } from "./bind-runtime-adapter.js";
import { valueFingerprint } from "./value-fingerprint.js";
import { doraFeeds, neutralDoraFeeds } from "./dora-feeds.js";
import { mergeIntoOnnxModel } from "../onnx/merge-onnx.js";
import { concatSlotFeeds, scatterRows, slotTensors, takeRows, type Feeds } from "./adapter-feeds.js";
import { createSessionForModel, type ExecutionProvider, type SessionOptions } from "./ort-session.js";

export interface OnnxLoraSessionOptions extends SessionOptions {
  /** Adapters to load at once; their modules get runtime slots. */
  adapters?: Record<string, LoraAdapter>;
  /** More modules to give slots to (for adapters loaded later): names with in/out features. */
  slots?: { name: string; inFeatures: number; outFeatures: number; dora?: boolean }[];
  /**
   * More initializers that adapters loaded later may replace at run time (trained biases,
   * modules_to_save weights); those of the adapters given at creation are found automatically.
   */
  replaceable?: string[];
  /** How `merge(name)` gets a model given as bytes again (without it, the bytes are kept for merges). */
  reloadModel?: () => Promise<Uint8Array>;
  /** For a model given as bytes: a name for messages, and the folder its external data and config.json are in. */
  label?: string;
  modelDir?: string;
  /**
   * Give every slot a per-row rank mask (LoraSlot.rowMask), so `runMixed` runs rows with different
   * adapters as one batch (their factors side by side along r) instead of one run per adapter.
   */
  rowMixing?: boolean;
}

/**
 * One ONNX Runtime session, many adapters: the graph gets a LoRA branch (x·Aᵀ·s·Bᵀ) at each slotted
 * module with the factors as inputs, and each run feeds the chosen adapter's factors — or zeros, for
 * the base model. Adapters of different ranks need no padding: the rank dimension is symbolic.
 * Switching adapters never re-creates the session. Several adapters run summed in one pass (their
 * ranks concatenated); a mixed batch runs each row with its own adapter; `merge(name)` gives an
 * adapter a session of its own with the weights merged (no added latency, one more copy of the
 * weights) until `unmerge(name)`. Whole tensors an adapter replaces (trained biases with `bias`
 * "all"/"lora_only", modules_to_save copies) are fed per run too: those initializers become graph
 * inputs, fed the stored values for the base and each adapter's own values for it.
 */
export class OnnxLoraSession {
  private readonly adapters = new Map<string, Feeds>();
  private readonly loaded = new Map<string, LoraAdapter>();
  private readonly mergedSessions = new Map<string, ort.InferenceSession>();
  private activeNames: string[] = [];
  private readonly base: Feeds;
  private readonly replaceable: ReadonlySet<string>;
  /** Adapters with DoRA modules (they cannot be summed with others). */
  private readonly doraAdapters = new Set<string>();
  /** Per adapter, the whole tensors it replaces. */
  private readonly replacedBy = new Map<string, string[]>();
  /** Concatenated factors of the adapter lists mixed batches used lately (rowMixing), by list. */
  private readonly mixedFeeds = new Map<string, { feeds: Feeds; offsets: Map<string, number[]> }>();

  private constructor(
    readonly session: ort.InferenceSession,
    readonly provider: ExecutionProvider,
    readonly providerReason: string,
    private readonly slots: Map<string, LoraSlot>,
    stored: ReadonlyMap<string, { values: Float32Array; dims: number[] }>,
    private readonly graphLabel: string,
    private readonly logger: Logger,
    private readonly describeFor: (adapter: LoraAdapter) => RuntimeTarget,
    private readonly mergedSession: (adapter: LoraAdapter) => Promise<ort.InferenceSession>,
  ) {
    this.base = {};
    this.replaceable = new Set(stored.keys());
    for (const [name, { values, dims }] of stored) this.base[name] = new ort.Tensor("float32", values, dims);
    for (const slot of slots.values()) {
      this.base[slot.inputA] = new ort.Tensor("float32", new Float32Array(slot.inFeatures), [slot.inFeatures, 1]);
      this.base[slot.inputB] = new ort.Tensor("float32", new Float32Array(slot.outFeatures), [1, slot.outFeatures]);
      Object.assign(this.base, neutralDoraFeeds(slot));
    }
  }

  /**
   * The weights are held once, by ONNX Runtime: JS keeps only the graph without weight values (to
   * bind adapters loaded later), plus the few values binding reads (DoRA modules' weights and biases,
   * replaceable tensors). `merge(name)` gets the full model again: the file re-read, or
   * `reloadModel` — a model given as bytes without it is kept for merges (one more copy).
   * @throws LowrankError when a module cannot be found in the graph or the model does not load.
   */
  static async create(model: string | Uint8Array, options: OnnxLoraSessionOptions = {}): Promise<OnnxLoraSession> {
    const label = typeof model === "string" ? model : (options.label ?? "model.onnx");
    const bytes = typeof model === "string" ? await readModelBytes(model) : model;
    const wanted = new Map<string, { name: string; inFeatures: number; outFeatures: number; dora?: boolean }>();
    // A module gets DoRA inputs when any adapter (or the `slots` option) needs them.
    const want = (m: { name: string; inFeatures: number; outFeatures: number; dora?: boolean }) =>
      wanted.set(m.name, { ...m, dora: Boolean(m.dora || wanted.get(m.name)?.dora) });
    for (const adapter of Object.values(options.adapters ?? {})) for (const m of adapterModules(adapter)) want(m);
    for (const m of options.slots ?? []) want(m);
    const modelDir = typeof model === "string" ? dirname(model) : (options.modelDir ?? defaultModelDir());
    const describeDir = typeof model === "string" || options.modelDir !== undefined ? modelDir : undefined;
    const fullDescriber = graphDescriber({ bytes }, label, modelDir, describeDir);
    const replaceable = new Set(options.replaceable ?? []);
    for (const [name, adapter] of Object.entries(options.adapters ?? {})) {
      for (const key of bindRuntimeAdapter(name, fullDescriber(adapter)).replacements.keys()) replaceable.add(key);
    }
    const rewritten = decodeModel(bytes, label);
    const slots = addLoraSlots(rewritten, [...wanted.values()], label, { rowMasks: options.rowMixing === true });
    const stored = initializersAsInputs(rewritten.graph, [...replaceable], modelDir, label);
    const created = await createSessionForModel(rewritten, modelDir, options);
    // ONNX Runtime holds the weights now; the slots keep their nodes and initializers for names only.
    for (const t of rewritten.graph.initializer) {
      t.raw_data = new Uint8Array(0);
      t.float_data = [];
    }
    const keep = new Set(replaceable);
    for (const slot of slots.values()) {
      if (!slot.dora) continue;
      // A weight shared with other nodes was copied for the module ("<name>.lowrank.<module>"): keep the original.
      keep.add(slot.location.initializer.name.split(".lowrank.")[0]!);
      if (slot.dora.bias !== undefined) keep.add(slot.dora.bias);
    }
    const describeFor = graphDescriber(withoutWeightValues(bytes, label, keep), label, modelDir, describeDir);
    const reload = typeof model === "string" ? () => readModelBytes(model) : (options.reloadModel ?? keptBytes(bytes));
    const session = new OnnxLoraSession(
      created.session,
      created.provider,
      created.reason,
      slots,
      stored,
      label,
      options.logger ?? silentLogger,
      describeFor,
      mergedSessionMaker(reload, label, modelDir, options),
    );
    try {
      for (const [name, adapter] of Object.entries(options.adapters ?? {})) session.loadAdapter(name, adapter);
    } catch (error) {
      await session.release();
      throw error;
    }
    return session;
  }

  /** Names of the loaded adapters. */
  adapterNames(): string[] {
    return [...this.adapters.keys()];
  }

  /**
   * Prepares an adapter's inputs (core's binding: scalings, patterns, shapes). Slotted modules it
   * does not adapt get zeros; tensors it replaces are fed in place of the stored ones.
   * @throws LowrankError for modules without a slot, DoRA, lora_bias, or a replaced tensor the
   *   session was not created to take (give the adapter at creation, or list it in `replaceable`).
   */
  loadAdapter(name: string, adapter: LoraAdapter): void {
    // One decode of the graph per adapter: binding and DoRA's weight norms both read it.
    const target = this.describeFor(adapter);
    const bound = bindRuntimeAdapter(name, target, this.logger);
    const feeds: Feeds = { ...this.base };
    for (const [key, tensor] of bound.replacements) {
      if (!this.replaceable.has(key))
        throw new LowrankError(
          "ADAPTER_INVALID",
          `adapter "${name}" replaces "${key}" (a trained bias or modules_to_save), which this session cannot take at run time; create the session ` +
            `with this adapter (or list the tensor in \`replaceable\`)`,
        );
      feeds[key] = tensor;
    }
    for (const { plan, factors } of bound.modules) {
      const slot = this.slots.get(plan.name);
      if (!slot)
        throw new LowrankError(
          "ADAPTER_INVALID",
          `adapter "${name}" adapts "${plan.name}", which has no runtime slot in this session; create the session with this adapter (or list the ` +
            `module in \`slots\`)`,
        );
      if (factors.magnitude) {
        const biasKey = slot.dora?.bias;
        const replaced = biasKey === undefined ? undefined : (feeds[biasKey]?.data as Float32Array | undefined);
        Object.assign(feeds, doraFeeds({ slot, factors, graph: target.graph, modelDir: target.modelDir, adapterName: name, replacedBias: replaced }));
        this.doraAdapters.add(name);
      }
      if (factors.loraBias)
        throw new LowrankError("ADAPTER_INVALID", `adapter "${name}" has lora_bias; runtime adapters support plain LoRA — merge it offline instead`);
      [feeds[slot.inputA], feeds[slot.inputB]] = slotTensors(slot, factors.A, factors.B, factors.r, factors.scaling);
    }
    this.adapters.set(name, feeds);
    this.mixedFeeds.clear();
    this.replacedBy.set(name, [...bound.replacements.keys()]);
    this.loaded.set(name, adapter);
  }

  /**
   * Loads an ONNX Runtime adapter file (`.onnx_adapter`, onnxruntime's AdapterFormat: LoRA inputs
   * named as Olive names them or as this session's slots, Aᵀ and scaling·Bᵀ) as adapter `name`.
   * @throws LowrankError CHECKPOINT_INVALID for a damaged file, and what loadAdapter throws.
   */
  loadOnnxAdapter(name: string, bytes: Uint8Array, label = `${name}.onnx_adapter`): void {
    const { parameters } = decodeOnnxAdapter(bytes, label);
    this.loadAdapter(name, onnxAdapterToPeft(parameters, { label }));
  }

  /** Removes an adapter (and its merged session, and its activation). */
  unloadAdapter(name: string): boolean {
    void this.unmerge(name);
    this.activeNames = this.activeNames.filter((n) => n !== name);
    this.loaded.delete(name);
    this.replacedBy.delete(name);
    this.doraAdapters.delete(name);
    this.mixedFeeds.clear();
    return this.adapters.delete(name);
  }

  /** The adapters `run` uses when it is not told which: none (the base model) until set. */
  get active(): string[] {
    return [...this.activeNames];
  }

  /** Chooses the default adapters of `run` (several are summed); null or [] runs the base model. */
  setActive(names: string | string[] | null): void {
    const list = names === null ? [] : typeof names === "string" ? [names] : [...names];
    for (const name of list) this.feedsOf(name);
    this.activeNames = list;
  }

  /**
   * Runs the model with the given adapter (or several, summed), the base model for null, or the
   * active adapters when `adapter` is left out. A merged adapter runs on its merged session.
   * @throws LowrankError USAGE for an adapter that is not loaded.
   */
  async run(feeds: Feeds, options: { adapter?: string | string[] | null } = {}): Promise<ort.InferenceSession.OnnxValueMapType> {
    const names =
      options.adapter === undefined
        ? this.activeNames
        : options.adapter === null
          ? []
          : typeof options.adapter === "string"
            ? [options.adapter]
            : options.adapter;
    const merged = names.length === 1 ? this.mergedSessions.get(names[0]!) : undefined;
    if (merged) return merged.run(feeds);
    const loras = names.length === 0 ? this.base : names.length === 1 ? this.feedsOf(names[0]!) : this.summedFeeds(names);
    return this.session.run({ ...feeds, ...loras, ...this.rowMasks(loras, batchOf(feeds), () => 1) });
  }

  /** Every slot's row mask for a batch (none without rowMixing): `value(row, column)` over its rank columns. */
  private rowMasks(loras: Feeds, batch: number, value: (row: number, column: number, slot: LoraSlot) => number): Feeds {
    const masks: Feeds = {};
    for (const slot of this.slots.values()) {
      if (!slot.rowMask) continue;
      const r = loras[slot.inputA]!.dims[1]!;
      const data = new Float32Array(batch * r);
      for (let row = 0; row < batch; row++) for (let k = 0; k < r; k++) data[row * r + k] = value(row, k, slot);
      masks[slot.rowMask] = new ort.Tensor("float32", data, [batch, r]);
    }
    return masks;
  }

  /**
   * One run of a batch whose rows use different adapters (rowMixing): the adapters' factors side by
   * side along r, each row's mask keeping its own adapter's columns (none for the base model).
   */
  private async runRows(feeds: Feeds, rowNames: readonly (string | null)[]): Promise<Record<string, ort.Tensor>> {
    const names = [...new Set(rowNames.filter((n): n is string => n !== null))];
    if (names.length === 0) return (await this.run(feeds, { adapter: null })) as Record<string, ort.Tensor>;
    const key = names.join("\u0000");
    let mixed = this.mixedFeeds.get(key);
    if (!mixed) {
      const each = names.map((n) => this.feedsOf(n));
      const offsets = new Map<string, number[]>();
      for (const slot of this.slots.values()) {
        let offset = 0;
        offsets.set(slot.module, each.map((f) => (offset += f[slot.inputA]!.dims[1]!) - f[slot.inputA]!.dims[1]!).concat(offset));
      }
      mixed = { feeds: { ...this.base, ...concatSlotFeeds(this.slots.values(), each) }, offsets };
      // A few recent adapter lists: a running batch keeps its list for many steps.
      if (this.mixedFeeds.size >= 8) this.mixedFeeds.delete(this.mixedFeeds.keys().next().value!);
      this.mixedFeeds.set(key, mixed);
    }
    const { offsets } = mixed;
    const rowIndex = rowNames.map((n) => (n === null ? -1 : names.indexOf(n)));
    const masks = this.rowMasks(mixed.feeds, rowNames.length, (row, column, slot) => {
      const j = rowIndex[row]!;
      if (j < 0) return 0;
      const bounds = offsets.get(slot.module)!;
      return column >= bounds[j]! && column < bounds[j + 1]! ? 1 : 0;
    });
    return (await this.session.run({ ...feeds, ...mixed.feeds, ...masks })) as Record<string, ort.Tensor>;
  }

  /**
   * A mixed batch (PEFT's adapter_names): row i runs with adapterNames[i], or the base model for null
   * or "__base__". With rowMixing the batch runs once (see runRows) unless a row's adapter is DoRA,
   * merged or replaces whole tensors; otherwise rows are grouped by adapter, each group runs once,
   * and the outputs are put back in row order — row by row the same as running it alone.
   */
  async runMixed(feeds: Feeds, adapterNames: readonly (string | null)[]): Promise<Record<string, ort.Tensor>> {
    const batch = Object.values(feeds)[0]?.dims[0];
    if (adapterNames.length !== batch) throw new LowrankError("USAGE", `adapterNames has ${adapterNames.length} entries for a batch of ${batch} rows`);
    const groups = new Map<string | null, number[]>();
    const rowNames = adapterNames.map((n) => (n === "__base__" ? null : n));
    for (const n of rowNames) if (n !== null) this.feedsOf(n);
    const oneRun = (n: string | null) =>
      n === null || (!this.doraAdapters.has(n) && !this.mergedSessions.has(n) && (this.replacedBy.get(n) ?? []).length === 0);
    if ([...this.slots.values()].some((s) => s.rowMask) && rowNames.every(oneRun)) return this.runRows(feeds, rowNames);
    rowNames.forEach((key, row) => groups.set(key, [...(groups.get(key) ?? []), row]));
    const results = [];
    for (const [name, rows] of groups) {
      const sub = Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, takeRows(t, rows)]));
      results.push({ rows, outputs: await this.run(sub, { adapter: name }) });
    }
    return scatterRows(batch, results);
  }

  /** Gives an adapter a session with its update merged into the weights; `run` uses it from now on. */
  async merge(name: string): Promise<void> {
    const adapter = this.loaded.get(name);
    if (!adapter) this.feedsOf(name);
    if (this.mergedSessions.has(name)) return;
    this.mergedSessions.set(name, await this.mergedSession(adapter!));
  }

  /** Drops an adapter's merged session: it runs through the runtime slots again. */
  async unmerge(name: string): Promise<void> {
    const merged = this.mergedSessions.get(name);
    this.mergedSessions.delete(name);
    await merged?.release();
  }

  isMerged(name: string): boolean {
    return this.mergedSessions.has(name);
  }

  /** Several adapters in one pass: ranks concatenated; at most one of them may replace tensors. */
  private summedFeeds(names: readonly string[]): Feeds {
    const dora = names.filter((n) => this.doraAdapters.has(n));
    if (dora.length > 0)
      throw new LowrankError(
        "USAGE",
        `adapter "${dora[0]}" is DoRA: its scaling depends on its own update, so it cannot be summed with other adapters in one pass`,
      );
    const each = names.map((n) => this.feedsOf(n));
    const replacing = names.filter((n) => (this.replacedBy.get(n) ?? []).length > 0);
    if (replacing.length > 1)
      throw new LowrankError(
        "USAGE",
        `adapters ${replacing.map((n) => `"${n}"`).join(" and ")} both replace whole tensors (trained biases or modules_to_save); PEFT runs only one ` +
          `such adapter at a time`,
      );
    const feeds: Feeds = replacing.length === 1 ? this.feedsOf(replacing[0]!) : {};
    // loadAdapter put each tensor an adapter replaces into its feeds.
    const replaced = Object.fromEntries((replacing.length === 1 ? this.replacedBy.get(replacing[0]!)! : []).map((k) => [k, feeds[k]!]));
    return { ...this.base, ...concatSlotFeeds(this.slots.values(), each), ...replaced };
  }

  private feedsOf(name: string): Feeds {
    const feeds = this.adapters.get(name);
    if (!feeds) throw new LowrankError("USAGE", `adapter "${name}" is not loaded in this session (loaded: ${this.adapterNames().join(", ") || "none"})`);
    return feeds;
  }

  /** The session's own input names, without the LoRA slots. */
  modelInputs(): string[] {
    const slotInputs = new Set([...this.slots.values()].flatMap((s) => [s.inputA, s.inputB, ...(s.dora ? [s.dora.scaleInput, s.dora.shiftInput] : [])]));
    return this.session.inputNames.filter((n) => !slotInputs.has(n) && !this.replaceable.has(n));
  }

  async release(): Promise<void> {
    for (const name of [...this.mergedSessions.keys()]) await this.unmerge(name);
    await this.session.release();
  }

  toString(): string {
    return `OnnxLoraSession(${this.graphLabel}, ${this.slots.size} slots, ${this.provider})`;
  }
}

/** The batch size of a run's feeds: the first dimension of input_ids (else of its first input). */
function batchOf(feeds: Feeds): number {
  const first = feeds.input_ids ?? Object.values(feeds)[0];
  return first?.dims[0] ?? 1;
}

/**
 * How an adapter is bound to the graph in `bytes`: a fresh decode per adapter (locating weights may
 * copy a shared one), so nothing else the closure could reach holds the caller's full model.
 */
function graphDescriber(
  source: { bytes: Uint8Array; fingerprints?: ReadonlyMap<string, string> },
  label: string,
  modelDir: string,
  describeDir: string | undefined,
) {
  return (adapter: LoraAdapter) => {
    const graph = decodeModel(source.bytes, label, { checkRoundTrip: false }).graph;
    return { ...describeOnnxForAdapter(graph, adapter, label, describeDir), graph, modelDir, fingerprints: source.fingerprints };
  };
}

/**
 * The model re-encoded without the values of its inline initializers, except those in `keep` (shapes
 * stay), and the fingerprints of the values dropped.
 */
function withoutWeightValues(bytes: Uint8Array, label: string, keep: ReadonlySet<string>): { bytes: Uint8Array; fingerprints: Map<string, string> } {
  const model = decodeModel(bytes, label, { checkRoundTrip: false });
  const fingerprints = new Map<string, string>();
  for (const t of model.graph.initializer) {
    if (keep.has(t.name) || !(t.raw_data && t.raw_data.byteLength > 0)) continue;
    fingerprints.set(t.name, valueFingerprint(t.raw_data));
    t.raw_data = new Uint8Array(0);
  }
  return { bytes: encodeModel(model), fingerprints };
}

function keptBytes(bytes: Uint8Array): () => Promise<Uint8Array> {
  return async () => bytes;
}

function mergedSessionMaker(reload: () => Promise<Uint8Array>, label: string, modelDir: string, options: SessionOptions) {
  return async (adapter: LoraAdapter) => {
    const full = decodeModel(await reload(), label, { checkRoundTrip: false });
    return (await createSessionForModel(mergeIntoOnnxModel(full, adapter, { modelDir, label }).model, modelDir, options)).session;
  };
}
