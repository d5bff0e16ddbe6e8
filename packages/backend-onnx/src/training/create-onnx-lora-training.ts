import { stat } from "node:fs/promises";
import type * as ort from "onnxruntime-node";
import { Checkpoint, createLoraConfig, describeModel, LowrankError, type LoraAdapter, type LoraConfig, type LoraConfigInput, type Logger } from "@lowrank/core";
import { convertToPlainLora, expandTargetModules } from "@lowrank/core/internal";
import type { ExecutionProvider } from "../session/ort-session.js";
import { trainingArchitecture, trainingTask, type TrainingTask } from "./architectures.js";
import { adapterOf, initialFactors, planLoraSlots, slotTensors, type ResidualInit, type TrainingSlot } from "./lora-plan.js";
import { savedModuleTensors } from "./saved-modules.js";
import { trainedBiases } from "./trained-biases.js";
import { buildTrainingGraph, type TrainedParameter } from "./training-graph.js";
import { openStreamedGraphSession } from "./training-session.js";

/** A LoRA adapter ready to train on ONNX Runtime: its factors, and the session of its graph. */
export interface OnnxLoraTraining {
  /** What the graph's loss is: causal LM, or (encoders) sequence classification. */
  task: TrainingTask;
  config: LoraConfig;
  slots: TrainingSlot[];
  /**
   * The trained values by adapter key, updated in place by the trainer: the factors (initialised as
   * the tfjs backend initialises them) and the checkpoint tensors trained beside them (`parameters`).
   */
  params: Map<string, Float32Array>;
  /**
   * The checkpoint tensors trained whole by adapter key, with their shapes (the same arrays as in
   * `params`): PEFT's trained biases (`bias` "all" / "lora_only") and modules_to_save (a classifier, an lm_head, a norm).
   */
  parameters: Map<string, TrainedParameter>;
  session: ort.InferenceSession;
  /** The execution provider the session runs on, and why (requested, or the CUDA failure). */
  provider: ExecutionProvider;
  reason: string;
  /** config.json of the base model. */
  modelConfig: Record<string, unknown>;
  trainableParameters: number;
  totalParameters: number;
  /**
   * The adapter with the current values, for writeAdapter. PiSSA / OLoRA adapters are converted to
   * fit the original base (convertToPlainLora) unless `raw` (training checkpoints keep them as trained).
   */
  adapter(options?: { raw?: boolean }): LoraAdapter;
  release(): Promise<void>;
}

export interface CreateOnnxLoraTrainingParams {
  /** A Hugging Face model folder (config.json + safetensors). */
  model: string;
  /** The adapter to create (PEFT's fields); fan_in_fan_out, task_type and (seq-cls) modules_to_save are filled in. */
  lora?: LoraConfigInput;
  /** `--task`; without it, the model type's (trainingTask). */
  task?: TrainingTask;
  seed: number;
  /** Train on packed sequences (core's packExamples): the graph takes segments and positions. */
  packed?: boolean;
  /** Recompute each block's activations in the backward pass (gradient checkpointing): less memory, about a third more compute. */
  recompute?: boolean;
  executionProvider?: ExecutionProvider;
  threads?: number;
  logger?: Logger;
}

/**
 * What a LoRA run on ONNX Runtime would train, without building anything: the task, the adapter's
 * config and slots (core's targeting), the checkpoint tensors trained whole (trained biases and
 * PEFT's modules_to_save — for sequence classification by default the classifier, as the tfjs trainer
 * sets it), the architecture, and the checkpoint's parameter count.
 * @throws LowrankError USAGE for an ONNX file or a task the model does not fit, CHECKPOINT_INVALID /
 *   TARGET_UNSUPPORTED naming what the ONNX trainer cannot train.
 */
export async function planOnnxLoraTraining(params: { model: string; lora?: LoraConfigInput; task?: TrainingTask; logger?: Logger }) {
  if ((await stat(params.model).catch(() => undefined))?.isFile()) {
    throw new LowrankError(
      "USAGE",
      `--model ${params.model}: the onnx trainer builds its graph from a Hugging Face model folder (config.json + safetensors), not an ONNX file`,
    );
  }
  const checkpoint = await Checkpoint.open(params.model);
  let description;
  let totalParameters = 0;
  let tensorNames: string[];
  try {
    const info = checkpoint.tensorInfo();
    tensorNames = [...info.keys()];
    description = describeModel(checkpoint.config, info);
    for (const t of info.values()) if (["F32", "F16", "BF16", "F64"].includes(t.dtype)) totalParameters += t.shape.reduce((a, b) => a * b, 1);
  } finally {
    await checkpoint.close();
  }
  const modelConfig = checkpoint.config;
  const architecture = trainingArchitecture(modelConfig, params.model);
  const task = trainingTask(modelConfig, params.task, params.model);
  const config = createLoraConfig({
    task_type: task === "seq-cls" ? "SEQ_CLS" : "CAUSAL_LM",
    base_model_name_or_path: params.model,
    // GPT-2-style Conv1D weights are stored input by output: say so, as PEFT users must.
    fan_in_fan_out: description.modules.some((m) => m.kind === "conv1d"),
    // As the tfjs trainer (and PEFT's SEQ_CLS task): the classification head is trained whole.
    ...(task === "seq-cls" ? { modules_to_save: ["classifier", "score"] } : {}),
    ...params.lora,
  });
  const { slots, modulesToSave } = planLoraSlots({
    config,
    description,
    supported: architecture.supports,
    inputRows: architecture.inputRows?.bind(architecture),
    label: params.model,
    logger: params.logger,
  });
  // Checkpoint name → adapter key of every tensor trained whole: the biases PEFT's `bias` trains, the saved modules' tensors.
  const trained = new Map([...trainedBiases(config, slots, tensorNames), ...savedModuleTensors(modulesToSave, tensorNames)]);
  return { task, config, slots, trained, description, modelConfig, architecture, totalParameters };
}

/**
 * Plans a new LoRA adapter on a Hugging Face checkpoint with core's targeting and initialisation
 * (the same factors as the tfjs backend for the same seed), builds the loss-and-gradients ONNX graph
 * for it and opens one session (CUDA when asked and present, else the CPU).
 * @throws LowrankError CHECKPOINT_INVALID / TARGET_UNSUPPORTED naming what the ONNX trainer cannot train.
 */
export async function createOnnxLoraTraining(params: CreateOnnxLoraTrainingParams): Promise<OnnxLoraTraining> {
  const { task, config, slots, trained: trainedNames, description, modelConfig, architecture, totalParameters } = await planOnnxLoraTraining(params);
  // Saved as PEFT saves it: the resolved module list, never null or "all-linear".
  const saved = { ...config, target_modules: expandTargetModules(config, description) };
  const residual: ResidualInit = { residuals: new Map(), initial: new Map() };
  const factors = initialFactors(slots, config, params.seed, { baseWeight: await baseWeights(params.model, config, slots), residual });
  const dropout = config.lora_dropout > 0;
  const trained = { names: trainedNames, parameters: new Map<string, TrainedParameter>() };
  // The frozen weights go from the checkpoint to an external data file one by one: held once, by ONNX
  // Runtime (PiSSA / OLoRA's residual weights replace their checkpoint tensors there).
  const { session, provider, reason } = await openStreamedGraphSession(
    (external) =>
      buildTrainingGraph({
        dir: params.model,
        architecture,
        slots,
        dropout,
        gradients: true,
        packed: params.packed,
        recompute: params.recompute,
        external,
        trained,
        overrides: residual.residuals,
      }),
    { executionProvider: params.executionProvider, threads: params.threads, logger: params.logger },
  );
  residual.residuals.clear();
  const values = new Map(factors);
  for (const [key, p] of trained.parameters) values.set(key, p.values);
  const shapes = new Map([...trained.parameters].map(([key, p]) => [key, p.shape]));
  return {
    task,
    config,
    slots,
    params: values,
    parameters: trained.parameters,
    session,
    provider,
    reason,
    modelConfig,
    totalParameters,
    trainableParameters:
      slots.reduce((n, s) => n + slotTensors(s).reduce((m, t) => m + t.shape.reduce((a, b) => a * b, 1), 0), 0) +
      [...trained.parameters.values()].reduce((n, p) => n + p.values.length, 0),
    adapter: (options = {}) => {
      const adapter = adapterOf(slots, saved, values, shapes);
      return options.raw ? adapter : convertToPlainLora(adapter, residual.initial);
    },
    release: () => session.release(),
  };
}

/**
 * PiSSA / OLoRA and DoRA: the adapted modules' base weights (stored layout, float32), read before the
 * graph is built, for core's initLoraFactors and DoRA's initial magnitude; undefined otherwise.
 */
async function baseWeights(model: string, config: LoraConfig, slots: readonly TrainingSlot[]): Promise<((slot: TrainingSlot) => Float32Array) | undefined> {
  const init = config.init_lora_weights;
  if (!config.use_dora && (typeof init !== "string" || init === "gaussian")) return undefined;
  const weights = new Map<string, Float32Array>();
  const checkpoint = await Checkpoint.open(model);
  try {
    for (const slot of slots) if (slot.kind !== "embedding") weights.set(slot.module, await checkpoint.readFloat32(`${slot.module}.weight`));
  } finally {
    await checkpoint.close();
  }
  return (slot) => weights.get(slot.module)!;
}
