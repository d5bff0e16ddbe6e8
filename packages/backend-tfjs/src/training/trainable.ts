import * as tf from "@tensorflow/tfjs";
import { float32Tensor, mergeLora, resolveTargets, type LoraAdapter, type LoraConfig, type Logger, type Tensor } from "@lowrank/core";
import { adapterKey, convertToPlainLora, initLoraFactors, loraInitSeed, outputNorms, parseAdapterKey, PEFT_PREFIX } from "@lowrank/core/internal";
import { attachAdapter, type AttachedAdapter } from "../lora/attach-adapter.js";
import type { TfjsModel } from "../models/model.js";

/** The parameters a run trains, by the names they are saved under. */
export interface TrainableSet {
  kind: "lora" | "full";
  variables: Map<string, tf.Variable>;
  /** Elements of all trainable parameters. */
  parameterCount: number;
}

export interface LoraTraining extends TrainableSet {
  kind: "lora";
  config: LoraConfig;
  attached: AttachedAdapter;
  /**
   * The adapter with the variables' current values, ready for writeAdapter. PiSSA / OLoRA adapters
   * are converted to fit the original base unless `raw` (training checkpoints keep them as trained).
   */
  exportAdapter(options?: { raw?: boolean }): LoraAdapter;
}

export interface FullTraining extends TrainableSet {
  kind: "full";
  /** Every parameter with its current value, under the checkpoint's own names. */
  exportTensors(): Map<string, Tensor>;
}

function count(variables: Map<string, tf.Variable>): number {
  let n = 0;
  for (const v of variables.values()) n += v.size;
  return n;
}

/**
 * Creates a new LoRA adapter on the model for training, with core's targeting and
 * initialisation (PEFT's rules): A and B (or the embedding pair) for each targeted module, DoRA's
 * magnitude from the base norms, trainable copies of modules_to_save, and trainable biases for
 * bias "all" / "lora_only". Only these become variables; the base stays frozen tensors.
 */
export function createLoraTraining(model: TfjsModel, config: LoraConfig, options: { seed: number; logger?: Logger }): LoraTraining {
  const report = resolveTargets(config, model.description, { logger: options.logger, training: true });
  const tensors = new Map<string, Tensor>();
  const initial = new Map<string, { A: Float32Array; B: Float32Array }>();
  report.targets.forEach((plan, index) => {
    const layer = model.linears.get(plan.name) ?? model.embeddings.get(plan.name);
    const weight = layer ? (layer.weight.dataSync() as Float32Array) : undefined;
    const layout = plan.kind === "linear" ? "out_in" : "in_out";
    const init = initLoraFactors({
      init: config.init_lora_weights,
      kind: plan.kind,
      r: plan.r,
      inFeatures: plan.inFeatures,
      outFeatures: plan.outFeatures,
      scaling: plan.scaling,
      seed: loraInitSeed(options.seed, index),
      baseWeight: weight,
      layout,
      label: plan.name,
    });
    if (init.residualWeight && layer) {
      initial.set(plan.name, { A: init.A.slice(), B: init.B.slice() });
      model.store.set(layer.weightKey, tf.tensor(init.residualWeight, layer.weight.shape))?.dispose();
    }
    const embedding = plan.kind === "embedding";
    tensors.set(adapterKey(plan.name, embedding ? "lora_embedding_A" : "lora_A"), float32Tensor(init.A, [plan.r, plan.inFeatures]));
    tensors.set(adapterKey(plan.name, embedding ? "lora_embedding_B" : "lora_B"), float32Tensor(init.B, [plan.outFeatures, plan.r]));
    if (config.use_dora && weight) {
      const merged = weight.slice();
      const delta = { A: init.A, B: init.B, r: plan.r, inFeatures: plan.inFeatures, outFeatures: plan.outFeatures, scaling: plan.scaling, layout } as const;
      // m starts at ‖W + ΔW‖, so the untrained DoRA layer equals plain LoRA (PEFT does the same).
      mergeLora(merged, delta);
      tensors.set(adapterKey(plan.name, "magnitude"), float32Tensor(outputNorms(merged, delta), [plan.outFeatures]));
    }
    if (config.lora_bias && !embedding)
      tensors.set(adapterKey(plan.name, "lora_B_bias"), float32Tensor(new Float32Array(plan.outFeatures), [plan.outFeatures]));
  });
  const storeKeys = model.store.keys();
  for (const saved of report.modulesToSave) {
    for (const key of storeKeys.filter((k) => k.startsWith(`${saved}.`))) {
      tensors.set(`${PEFT_PREFIX}${key}`, float32Tensor(model.store.get(key).dataSync() as Float32Array, model.store.get(key).shape));
    }
  }
  if (config.bias !== "none") {
    const targeted = new Set(report.targets.map((t) => t.name));
    for (const key of storeKeys.filter((k) => k.endsWith(".bias"))) {
      const module = key.slice(0, -".bias".length);
      if (report.modulesToSave.some((s) => key.startsWith(`${s}.`))) continue;
      if (config.bias === "lora_only" && !targeted.has(module)) continue;
      const name = targeted.has(module) ? `${PEFT_PREFIX}${module}.base_layer.bias` : `${PEFT_PREFIX}${key}`;
      tensors.set(name, float32Tensor(model.store.get(key).dataSync() as Float32Array, model.store.get(key).shape));
    }
  }
  // Saved as PEFT saves it: the resolved module list, never null or "all-linear".
  const adapter: LoraAdapter = { config: { ...config, target_modules: report.targetModules }, tensors };
  const attached = attachAdapter(model, adapter, { trainable: true, logger: options.logger });
  return loraTrainingFrom(model, attached, initial);
}

/** Training state over an adapter already attached with `trainable: true` (e.g. a resumed one). */
export function loraTrainingFrom(
  _model: TfjsModel,
  attached: AttachedAdapter,
  initial: ReadonlyMap<string, { A: Float32Array; B: Float32Array }> = new Map(),
): LoraTraining {
  const variables = new Map<string, tf.Variable>();
  const roles = new Map<string, () => tf.Tensor>();
  for (const [name, branch] of attached.branches) {
    const embedding = attached.adapter.tensors.has(adapterKey(name, "lora_embedding_A"));
    const entries: [string, tf.Tensor | undefined][] = [
      [adapterKey(name, embedding ? "lora_embedding_A" : "lora_A"), branch.A],
      [adapterKey(name, embedding ? "lora_embedding_B" : "lora_B"), branch.B],
      [adapterKey(name, "magnitude"), branch.magnitude],
      [adapterKey(name, "lora_B_bias"), branch.bias],
    ];
    for (const [key, t] of entries) if (t) roles.set(key, () => t);
  }
  for (const key of attached.adapter.tensors.keys()) {
    if (roles.has(key)) continue;
    const parsed = parseAdapterKey(key);
    const t = parsed?.role === "replacement" ? attached.replaced.get(parsed.baseKey) : undefined;
    if (t) roles.set(key, () => t);
  }
  for (const [key, get] of roles) {
    const t = get();
    if (t instanceof tf.Variable) variables.set(key, t);
  }
  return {
    kind: "lora",
    config: attached.adapter.config,
    attached,
    variables,
    parameterCount: count(variables),
    exportAdapter(options = {}) {
      const tensors = new Map<string, Tensor>();
      for (const [key, original] of attached.adapter.tensors) {
        const t = roles.get(key)?.();
        tensors.set(key, t ? float32Tensor(t.dataSync() as Float32Array, t.shape) : original);
      }
      const adapter = { config: { ...attached.adapter.config, inference_mode: true }, tensors };
      return options.raw ? adapter : convertToPlainLora(adapter, initial);
    },
  };
}

/** Full fine-tuning: every floating-point parameter of the model becomes a variable. */
export function createFullTraining(model: TfjsModel): FullTraining {
  const variables = new Map<string, tf.Variable>();
  for (const key of model.store.keys()) variables.set(key, model.store.makeTrainable(key));
  return {
    kind: "full",
    variables,
    parameterCount: count(variables),
    exportTensors() {
      return new Map([...variables].map(([key, v]) => [key, float32Tensor(v.dataSync() as Float32Array, v.shape)]));
    },
  };
}
