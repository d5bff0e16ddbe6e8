import {
  float32Tensor,
  LowrankError,
  mergeLora,
  resolveTargets,
  type LoraAdapter,
  type LoraConfig,
  type Logger,
  type ModelDescription,
  type Tensor,
} from "@lowrank/core";
import { adapterKey, initLoraFactors, loraInitSeed, outputNorms } from "@lowrank/core/internal";
import type { GraphBuilder } from "../export/graph-builder.js";
import type { LoraInputs } from "./lora-linear-ops.js";

/** One adapted module of a training run, with its graph input and output names. */
export interface TrainingSlot {
  module: string;
  /** "embedding": PEFT's lora_embedding_A [r, vocab] and lora_embedding_B [dim, r] on a token table. */
  kind: "linear" | "conv1d" | "embedding";
  /** Adapter keys, also the graph input names of the factors. */
  aKey: string;
  bKey: string;
  /** DoRA (`use_dora`): the adapter key and graph input of lora_magnitude_vector [out]. */
  magnitudeKey?: string;
  /** PEFT's `lora_bias`: the adapter key and graph input of lora_B.bias [out]. */
  biasKey?: string;
  r: number;
  inFeatures: number;
  outFeatures: number;
  scaling: number;
  /** Position in core's target report (the order the initialisation seeds follow). */
  index: number;
  /**
   * Rows the module reads each step beyond the batch's tokens (DeBERTa's relative-position table
   * through a shared query_proj / key_proj): its dropout mask is [tokens + extraRows, in].
   */
  extraRows?: number;
  /** False when the module reads its extraRows alone, no token (DeBERTa's pos_*_proj): mask [extraRows, in]. */
  tokens?: false;
}

/** A slot's trained tensors (A, B, DoRA's magnitude, lora_B's bias) with their shapes: graph inputs, gradient outputs, adapter tensors. */
export function slotTensors(slot: TrainingSlot): { key: string; shape: number[] }[] {
  return [
    { key: slot.aKey, shape: [slot.r, slot.inFeatures] },
    { key: slot.bKey, shape: [slot.outFeatures, slot.r] },
    ...(slot.magnitudeKey ? [{ key: slot.magnitudeKey, shape: [slot.outFeatures] }] : []),
    ...(slot.biasKey ? [{ key: slot.biasKey, shape: [slot.outFeatures] }] : []),
  ];
}

/** The rows of a slot's dropout mask for a batch of `tokens`: the tokens (unless it reads none) and its extraRows. */
export const maskRows = (slot: TrainingSlot, tokens: number): number => (slot.tokens === false ? 0 : tokens) + (slot.extraRows ?? 0);

/** The graph output name of a factor's gradient. */
export const gradientName = (key: string): string => `${key}.grad`;
/** The graph input name of a module's dropout mask. */
export const dropoutMaskName = (module: string): string => `lora_dropout_mask.${module}`;
/** The graph input holding every module's scaling, in slot order. */
export const SCALINGS_INPUT = "lora_scalings";

/**
 * The modules a LoRA config adapts on a model, checked against what the ONNX trainer implements:
 * LoRA (any r, alpha, rsLoRA, rank/alpha patterns, dropout; init true, false, "gaussian", "pissa",
 * "pissa_niter_N", "olora"; `bias` "all" / "lora_only", see trainedBiases) on the projections and
 * token embeddings `supported` accepts, DoRA and `lora_bias` (a trained lora_B.bias) on the
 * projections; PEFT's modules_to_save are returned as core resolves them (see savedModuleTensors).
 * LoftQ is refused with a LowrankError naming the field (DoRA on an embedding by core's targeting).
 */
export function planLoraSlots(params: {
  config: LoraConfig;
  description: ModelDescription;
  supported: (module: string) => boolean;
  /** The architecture's rows beyond the tokens that a module reads (TrainingArchitecture.inputRows). */
  inputRows?: (module: string) => { rows: number; tokens: boolean } | undefined;
  label: string;
  logger?: Logger;
}): { slots: TrainingSlot[]; modulesToSave: string[] } {
  const { config, label } = params;
  const refuse = (what: string) => new LowrankError("TARGET_UNSUPPORTED", `${label}: the onnx trainer does not support ${what} yet; use --backend tfjs`);
  const init = config.init_lora_weights;
  if (typeof init === "string" && !["gaussian", "pissa", "olora"].includes(init) && !/^pissa_niter_\d+$/.test(init))
    throw refuse(`\`init_lora_weights\` "${init}"`);
  const report = resolveTargets(config, params.description, { logger: params.logger, training: true });
  const slots = report.targets.map((plan, index): TrainingSlot => {
    if (!params.supported(plan.name)) throw refuse(`LoRA on \`${plan.name}\` (target_modules)`);
    const embedding = plan.kind === "embedding";
    const rows = params.inputRows?.(plan.name);
    return {
      module: plan.name,
      kind: plan.kind,
      aKey: adapterKey(plan.name, embedding ? "lora_embedding_A" : "lora_A"),
      bKey: adapterKey(plan.name, embedding ? "lora_embedding_B" : "lora_B"),
      ...(config.use_dora && !embedding ? { magnitudeKey: adapterKey(plan.name, "magnitude") } : {}),
      ...(config.lora_bias && !embedding ? { biasKey: adapterKey(plan.name, "lora_B_bias") } : {}),
      r: plan.r,
      inFeatures: plan.inFeatures,
      outFeatures: plan.outFeatures,
      scaling: plan.scaling,
      index,
      ...(rows && rows.rows > 0 ? { extraRows: rows.rows } : {}),
      ...(rows && !rows.tokens ? { tokens: false as const } : {}),
    };
  });
  return { slots, modulesToSave: [...report.modulesToSave] };
}

/** The stored layout of an adapted module's weight: GPT-2's Conv1D [in, out], nn.Linear [out, in]. */
export const weightLayout = (slot: TrainingSlot): "in_out" | "out_in" => (slot.kind === "conv1d" ? "in_out" : "out_in");

/** What PiSSA / OLoRA initialisation changes: the residual base weights and each module's initial factors. */
export interface ResidualInit {
  /** W − scaling·B₀·A₀ in the stored layout, by checkpoint weight name (`<module>.weight`). */
  residuals: Map<string, Float32Array>;
  /** A₀ and B₀ by module, for saving the adapter against the original base. */
  initial: Map<string, { A: Float32Array; B: Float32Array }>;
}

/**
 * Initial factors with core's initLoraFactors and loraInitSeed (by target index), as every backend
 * draws them, so both backends start from the same A and B. PiSSA and OLoRA need each module's base
 * weight (`baseWeight`, stored layout) and fill `residual` with what the graph must use instead; so
 * does DoRA, whose magnitude starts at ‖W + ΔW‖ per output row (the tfjs trainer's and PEFT's start).
 */
export function initialFactors(
  slots: readonly TrainingSlot[],
  config: LoraConfig,
  seed: number,
  options: { baseWeight?: (slot: TrainingSlot) => Float32Array | undefined; residual?: ResidualInit } = {},
): Map<string, Float32Array> {
  const params = new Map<string, Float32Array>();
  for (const slot of slots) {
    const baseWeight = slot.kind === "embedding" ? undefined : options.baseWeight?.(slot);
    const init = initLoraFactors({
      init: config.init_lora_weights,
      kind: slot.kind,
      r: slot.r,
      inFeatures: slot.inFeatures,
      outFeatures: slot.outFeatures,
      scaling: slot.scaling,
      seed: loraInitSeed(seed, slot.index),
      label: slot.module,
      ...(baseWeight ? { baseWeight, layout: weightLayout(slot) } : {}),
    });
    if (init.residualWeight) {
      if (!options.residual) throw new Error(`${slot.module}: ${String(config.init_lora_weights)} initialisation without a place for the residual weight`);
      options.residual.residuals.set(`${slot.module}.weight`, init.residualWeight);
      options.residual.initial.set(slot.module, { A: init.A.slice(), B: init.B.slice() });
    }
    if (slot.magnitudeKey) {
      if (!baseWeight) throw new Error(`${slot.module}: DoRA initialisation without the base weight`);
      const merged = baseWeight.slice();
      const delta = {
        A: init.A,
        B: init.B,
        r: slot.r,
        inFeatures: slot.inFeatures,
        outFeatures: slot.outFeatures,
        scaling: slot.scaling,
        layout: weightLayout(slot),
      };
      mergeLora(merged, delta);
      params.set(slot.magnitudeKey, outputNorms(merged, delta));
    }
    params.set(slot.aKey, init.A);
    params.set(slot.bKey, init.B);
    // lora_B.bias starts at zero, as PEFT's reset and the tfjs trainer start it.
    if (slot.biasKey) params.set(slot.biasKey, new Float32Array(slot.outFeatures));
  }
  return params;
}

/**
 * The adapter (PEFT keys and shapes) holding `params`' current values: the factors of every slot and
 * the trained checkpoint tensors (`extra`: adapter key → shape, e.g. PEFT's trained biases).
 */
export function adapterOf(
  slots: readonly TrainingSlot[],
  config: LoraConfig,
  params: ReadonlyMap<string, Float32Array>,
  extra: ReadonlyMap<string, readonly number[]> = new Map(),
): LoraAdapter {
  const tensors = new Map<string, Tensor>();
  for (const slot of slots) for (const { key, shape } of slotTensors(slot)) tensors.set(key, float32Tensor(params.get(key)!.slice(), shape));
  for (const [key, shape] of extra) tensors.set(key, float32Tensor(params.get(key)!.slice(), [...shape]));
  return { config: { ...config, inference_mode: true }, tensors };
}

/** The LoRA graph inputs and gradient outputs of every slot, by module name. */
export function loraInputs(g: GraphBuilder, slots: readonly TrainingSlot[], options: { dropout: boolean }): Map<string, LoraInputs> {
  const inputs = new Map<string, LoraInputs>();
  slots.forEach((slot, i) => {
    inputs.set(slot.module, {
      A: slot.aKey,
      B: slot.bKey,
      gradA: gradientName(slot.aKey),
      gradB: gradientName(slot.bKey),
      ...(slot.magnitudeKey ? { magnitude: slot.magnitudeKey, gradMagnitude: gradientName(slot.magnitudeKey) } : {}),
      ...(slot.biasKey ? { bias: slot.biasKey, gradBias: gradientName(slot.biasKey) } : {}),
      scaling: g.one("/lora", "Gather", [SCALINGS_INPUT, g.constInts([i])], { axis: 0 }),
      // PEFT applies no dropout on an embedding's LoRA path.
      ...(options.dropout && slot.kind !== "embedding" ? { dropoutMask: dropoutMaskName(slot.module) } : {}),
    });
  });
  return inputs;
}
