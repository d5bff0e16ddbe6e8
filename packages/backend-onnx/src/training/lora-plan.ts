import { float32Tensor, LowrankError, resolveTargets, type LoraAdapter, type LoraConfig, type Logger, type ModelDescription, type Tensor } from "@lowrank/core";
import { adapterKey, initLoraFactors, loraInitSeed } from "@lowrank/core/internal";
import type { GraphBuilder } from "../export/graph-builder.js";
import type { LoraInputs } from "./lora-linear-ops.js";

/** One adapted module of a training run, with its graph input and output names. */
export interface TrainingSlot {
  module: string;
  kind: "linear" | "conv1d";
  /** Adapter keys, also the graph input names of the factors. */
  aKey: string;
  bKey: string;
  r: number;
  inFeatures: number;
  outFeatures: number;
  scaling: number;
  /** Position in core's target report (the order the initialisation seeds follow). */
  index: number;
}

/** The graph output name of a factor's gradient. */
export const gradientName = (key: string): string => `${key}.grad`;
/** The graph input name of a module's dropout mask. */
export const dropoutMaskName = (module: string): string => `lora_dropout_mask.${module}`;
/** The graph input holding every module's scaling, in slot order. */
export const SCALINGS_INPUT = "lora_scalings";

/**
 * The modules a LoRA config adapts on a model, checked against what the ONNX trainer implements:
 * plain LoRA (any r, alpha, rsLoRA, rank/alpha patterns, dropout) on the projections `supported`
 * accepts. DoRA, lora_bias, trained biases, modules_to_save, embedding LoRA and PiSSA/OLoRA are
 * refused with a LowrankError naming the field.
 */
export function planLoraSlots(params: {
  config: LoraConfig;
  description: ModelDescription;
  supported: (module: string) => boolean;
  label: string;
  logger?: Logger;
}): TrainingSlot[] {
  const { config, label } = params;
  const refuse = (what: string) => new LowrankError("TARGET_UNSUPPORTED", `${label}: the onnx trainer does not support ${what} yet; use --backend tfjs`);
  if (config.use_dora) throw refuse("`use_dora` (DoRA)");
  if (config.lora_bias) throw refuse("`lora_bias`");
  if (config.bias !== "none") throw refuse(`\`bias\` "${config.bias}" (trained biases)`);
  if (typeof config.init_lora_weights === "string" && config.init_lora_weights !== "gaussian")
    throw refuse(`\`init_lora_weights\` "${config.init_lora_weights}"`);
  const report = resolveTargets(config, params.description, { logger: params.logger });
  if (report.modulesToSave.length > 0) throw refuse(`\`modules_to_save\` (${report.modulesToSave.join(", ")})`);
  return report.targets.map((plan, index) => {
    if (plan.kind === "embedding" || !params.supported(plan.name)) throw refuse(`LoRA on \`${plan.name}\` (target_modules)`);
    return {
      module: plan.name,
      kind: plan.kind,
      aKey: adapterKey(plan.name, "lora_A"),
      bKey: adapterKey(plan.name, "lora_B"),
      r: plan.r,
      inFeatures: plan.inFeatures,
      outFeatures: plan.outFeatures,
      scaling: plan.scaling,
      index,
    };
  });
}

/**
 * Initial factors with core's initLoraFactors and loraInitSeed (by target index), as every backend
 * draws them, so both backends start from the same A and B.
 */
export function initialFactors(slots: readonly TrainingSlot[], config: LoraConfig, seed: number): Map<string, Float32Array> {
  const params = new Map<string, Float32Array>();
  for (const slot of slots) {
    const init = initLoraFactors({
      init: config.init_lora_weights,
      kind: slot.kind,
      r: slot.r,
      inFeatures: slot.inFeatures,
      outFeatures: slot.outFeatures,
      scaling: slot.scaling,
      seed: loraInitSeed(seed, slot.index),
      label: slot.module,
    });
    params.set(slot.aKey, init.A);
    params.set(slot.bKey, init.B);
  }
  return params;
}

/** The adapter (PEFT keys and shapes) holding `params`' current values. */
export function adapterOf(slots: readonly TrainingSlot[], config: LoraConfig, params: ReadonlyMap<string, Float32Array>): LoraAdapter {
  const tensors = new Map<string, Tensor>();
  for (const slot of slots) {
    tensors.set(slot.aKey, float32Tensor(params.get(slot.aKey)!.slice(), [slot.r, slot.inFeatures]));
    tensors.set(slot.bKey, float32Tensor(params.get(slot.bKey)!.slice(), [slot.outFeatures, slot.r]));
  }
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
      scaling: g.one("/lora", "Gather", [SCALINGS_INPUT, g.constInts([i])], { axis: 0 }),
      ...(options.dropout ? { dropoutMask: dropoutMaskName(slot.module) } : {}),
    });
  });
  return inputs;
}
