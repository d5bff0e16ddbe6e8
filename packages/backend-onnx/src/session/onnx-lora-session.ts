import { readFile } from "node:fs/promises";
import path from "node:path";
import * as ort from "onnxruntime-node";
import { bindAdapter, LowrankError, silentLogger, toFloat32, type LoraAdapter, type Logger } from "@lowrank/core";
import { addLoraSlots, type LoraSlot } from "../onnx/add-lora-slots.js";
import { decodeModel, type GraphProto } from "../onnx/onnx-codec.js";
import { readFloatTensor } from "../onnx/tensor-data.js";

function sameValues(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
import { adapterModules, describeOnnxForAdapter } from "../onnx/onnx-model-description.js";
import { createSessionForModel, type ExecutionProvider, type SessionOptions } from "./ort-session.js";

type Feeds = Record<string, ort.Tensor>;

export interface OnnxLoraSessionOptions extends SessionOptions {
  /** Adapters to load at once; their modules get runtime slots. */
  adapters?: Record<string, LoraAdapter>;
  /** More modules to give slots to (for adapters loaded later): names with in/out features. */
  slots?: { name: string; inFeatures: number; outFeatures: number }[];
}

/** Aᵀ ([in, r]) and scaling·Bᵀ ([r, out]) from PEFT's A [r, in] and B [out, r]. */
function slotTensors(slot: LoraSlot, A: Float32Array, B: Float32Array, r: number, scaling: number): [ort.Tensor, ort.Tensor] {
  const at = new Float32Array(slot.inFeatures * r);
  for (let k = 0; k < r; k++) for (let i = 0; i < slot.inFeatures; i++) at[i * r + k] = A[k * slot.inFeatures + i];
  const bt = new Float32Array(r * slot.outFeatures);
  for (let o = 0; o < slot.outFeatures; o++) for (let k = 0; k < r; k++) bt[k * slot.outFeatures + o] = scaling * B[o * r + k];
  return [new ort.Tensor("float32", at, [slot.inFeatures, r]), new ort.Tensor("float32", bt, [r, slot.outFeatures])];
}

/**
 * One ONNX Runtime session, many adapters: the graph gets a LoRA branch (x·Aᵀ·s·Bᵀ) at each slotted
 * module with the factors as inputs, and each run feeds the chosen adapter's factors — or zeros, for
 * the base model. Adapters of different ranks need no padding: the rank dimension is symbolic.
 * Switching adapters never re-creates the session.
 */
export class OnnxLoraSession {
  private readonly adapters = new Map<string, Feeds>();
  private readonly base: Feeds;

  private constructor(
    readonly session: ort.InferenceSession,
    readonly provider: ExecutionProvider,
    readonly providerReason: string,
    private readonly slots: Map<string, LoraSlot>,
    private readonly graphLabel: string,
    private readonly logger: Logger,
    private readonly describeFor: (adapter: LoraAdapter) => ReturnType<typeof describeOnnxForAdapter> & { graph: GraphProto; modelDir: string },
  ) {
    this.base = {};
    for (const slot of slots.values()) {
      this.base[slot.inputA] = new ort.Tensor("float32", new Float32Array(slot.inFeatures), [slot.inFeatures, 1]);
      this.base[slot.inputB] = new ort.Tensor("float32", new Float32Array(slot.outFeatures), [1, slot.outFeatures]);
    }
  }

  /** @throws LowrankError when a module cannot be found in the graph or the model does not load. */
  static async create(model: string | Uint8Array, options: OnnxLoraSessionOptions = {}): Promise<OnnxLoraSession> {
    const label = typeof model === "string" ? model : "model.onnx";
    let bytes: Uint8Array;
    if (typeof model === "string") {
      try {
        bytes = await readFile(model);
      } catch (error) {
        throw new LowrankError("CHECKPOINT_INVALID", `${model}: cannot read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
      }
    } else {
      bytes = model;
    }
    const pristine = () => decodeModel(bytes, label, { checkRoundTrip: false });
    const wanted = new Map<string, { name: string; inFeatures: number; outFeatures: number }>();
    for (const adapter of Object.values(options.adapters ?? {})) for (const m of adapterModules(adapter)) wanted.set(m.name, m);
    for (const m of options.slots ?? []) wanted.set(m.name, m);
    const rewritten = decodeModel(bytes, label);
    const slots = addLoraSlots(rewritten, [...wanted.values()], label);
    const modelDir = typeof model === "string" ? path.dirname(model) : process.cwd();
    const created = await createSessionForModel(rewritten, modelDir, options);
    const session = new OnnxLoraSession(created.session, created.provider, created.reason, slots, label, options.logger ?? silentLogger, (adapter) => {
      const graph = pristine().graph;
      return { ...describeOnnxForAdapter(graph, adapter, label), graph, modelDir };
    });
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
   * does not adapt get zeros.
   * @throws LowrankError for modules without a slot, DoRA, or replaced tensors (use the offline merge).
   */
  loadAdapter(name: string, adapter: LoraAdapter): void {
    const { description, graph, modelDir } = this.describeFor(adapter);
    const bound = bindAdapter(adapter, description, { logger: this.logger, label: `adapter "${name}"`, layoutFromStorage: true });
    // A saved copy of a base tensor (PEFT's save_embedding_layers) changes nothing; anything else would.
    const differing = [...bound.replacements].filter(([key, tensor]) => {
      const init = graph.initializer.find((t) => t.name === key);
      return !init || !sameValues(readFloatTensor(init, modelDir), toFloat32(tensor, key));
    });
    if (differing.length > 0) throw new LowrankError("ADAPTER_INVALID", `adapter "${name}" replaces whole tensors (${differing.slice(0, 2).map(([k]) => k).join(", ")}); runtime adapters add low-rank branches only — merge it offline instead`);
    const feeds: Feeds = { ...this.base };
    for (const { plan, factors } of bound.modules) {
      const slot = this.slots.get(plan.name);
      if (!slot) throw new LowrankError("ADAPTER_INVALID", `adapter "${name}" adapts "${plan.name}", which has no runtime slot in this session; create the session with this adapter (or list the module in \`slots\`)`);
      if (factors.magnitude) throw new LowrankError("ADAPTER_INVALID", `adapter "${name}" is DoRA ("${plan.name}"); runtime adapters support plain LoRA — merge DoRA offline instead`);
      if (factors.loraBias) throw new LowrankError("ADAPTER_INVALID", `adapter "${name}" has lora_bias; runtime adapters support plain LoRA — merge it offline instead`);
      [feeds[slot.inputA], feeds[slot.inputB]] = slotTensors(slot, factors.A, factors.B, factors.r, factors.scaling);
    }
    this.adapters.set(name, feeds);
  }

  unloadAdapter(name: string): boolean {
    return this.adapters.delete(name);
  }

  /**
   * Runs the model with the named adapter active, or the base model when `adapter` is null/undefined.
   * @throws LowrankError USAGE for an adapter that is not loaded.
   */
  async run(feeds: Feeds, options: { adapter?: string | null } = {}): Promise<ort.InferenceSession.OnnxValueMapType> {
    const name = options.adapter ?? null;
    const loras = name === null ? this.base : this.adapters.get(name);
    if (!loras) throw new LowrankError("USAGE", `adapter "${name}" is not loaded in this session (loaded: ${this.adapterNames().join(", ") || "none"})`);
    return this.session.run({ ...feeds, ...loras });
  }

  /** The session's own input names, without the LoRA slots. */
  modelInputs(): string[] {
    const slotInputs = new Set([...this.slots.values()].flatMap((s) => [s.inputA, s.inputB]));
    return this.session.inputNames.filter((n) => !slotInputs.has(n));
  }

  release(): Promise<void> {
    return this.session.release();
  }

  toString(): string {
    return `OnnxLoraSession(${this.graphLabel}, ${this.slots.size} slots, ${this.provider})`;
  }
}

