import { stat } from "node:fs/promises";
import type * as ort from "onnxruntime-node";
import { Checkpoint, createLoraConfig, describeModel, LowrankError, type LoraAdapter, type LoraConfig, type LoraConfigInput, type Logger } from "@lowrank/core";
import { expandTargetModules } from "@lowrank/core/internal";
import type { ExecutionProvider } from "../session/ort-session.js";
import { trainingArchitecture } from "./architectures.js";
import { adapterOf, initialFactors, planLoraSlots, type TrainingSlot } from "./lora-plan.js";
import { buildTrainingGraph } from "./training-graph.js";
import { openStreamedGraphSession } from "./training-session.js";

/** A LoRA adapter ready to train on ONNX Runtime: its factors, and the session of its graph. */
export interface OnnxLoraTraining {
  config: LoraConfig;
  slots: TrainingSlot[];
  /** The trained factors by adapter key (initialised as the tfjs backend initialises them). */
  params: Map<string, Float32Array>;
  session: ort.InferenceSession;
  /** The execution provider the session runs on, and why (requested, or the CUDA failure). */
  provider: ExecutionProvider;
  reason: string;
  /** config.json of the base model. */
  modelConfig: Record<string, unknown>;
  trainableParameters: number;
  totalParameters: number;
  /** The adapter with the current factor values, for writeAdapter. */
  adapter(): LoraAdapter;
  release(): Promise<void>;
}

export interface CreateOnnxLoraTrainingParams {
  /** A Hugging Face model folder (config.json + safetensors). */
  model: string;
  /** The adapter to create (PEFT's fields); fan_in_fan_out and task_type are filled in. */
  lora?: LoraConfigInput;
  seed: number;
  executionProvider?: ExecutionProvider;
  threads?: number;
  logger?: Logger;
}

/**
 * What a LoRA run on ONNX Runtime would train, without building anything: the adapter's config and
 * slots (core's targeting), the architecture, and the checkpoint's parameter count.
 * @throws LowrankError USAGE for an ONNX file, CHECKPOINT_INVALID / TARGET_UNSUPPORTED naming what
 *   the ONNX trainer cannot train.
 */
export async function planOnnxLoraTraining(params: { model: string; lora?: LoraConfigInput; logger?: Logger }) {
  if ((await stat(params.model).catch(() => undefined))?.isFile()) {
    throw new LowrankError(
      "USAGE",
      `--model ${params.model}: the onnx trainer builds its graph from a Hugging Face model folder (config.json + safetensors), not an ONNX file`,
    );
  }
  const checkpoint = await Checkpoint.open(params.model);
  let description;
  let totalParameters = 0;
  try {
    const info = checkpoint.tensorInfo();
    description = describeModel(checkpoint.config, info);
    for (const t of info.values()) if (["F32", "F16", "BF16", "F64"].includes(t.dtype)) totalParameters += t.shape.reduce((a, b) => a * b, 1);
  } finally {
    await checkpoint.close();
  }
  const modelConfig = checkpoint.config;
  const architecture = trainingArchitecture(modelConfig, params.model);
  const config = createLoraConfig({
    task_type: "CAUSAL_LM",
    base_model_name_or_path: params.model,
    // GPT-2-style Conv1D weights are stored input by output: say so, as PEFT users must.
    fan_in_fan_out: description.modules.some((m) => m.kind === "conv1d"),
    ...params.lora,
  });
  const slots = planLoraSlots({ config, description, supported: architecture.supports, label: params.model, logger: params.logger });
  return { config, slots, description, modelConfig, architecture, totalParameters };
}

/**
 * Plans a new LoRA adapter on a Hugging Face checkpoint with core's targeting and initialisation
 * (the same factors as the tfjs backend for the same seed), builds the loss-and-gradients ONNX graph
 * for it and opens one session (CUDA when asked and present, else the CPU).
 * @throws LowrankError CHECKPOINT_INVALID / TARGET_UNSUPPORTED naming what the ONNX trainer cannot train.
 */
export async function createOnnxLoraTraining(params: CreateOnnxLoraTrainingParams): Promise<OnnxLoraTraining> {
  const { config, slots, description, modelConfig, architecture, totalParameters } = await planOnnxLoraTraining(params);
  // Saved as PEFT saves it: the resolved module list, never null or "all-linear".
  const saved = { ...config, target_modules: expandTargetModules(config, description) };
  const factors = initialFactors(slots, config, params.seed);
  const dropout = config.lora_dropout > 0;
  // The frozen weights go from the checkpoint to an external data file one by one: held once, by ONNX Runtime.
  const { session, provider, reason } = await openStreamedGraphSession(
    (external) => buildTrainingGraph({ dir: params.model, architecture, slots, dropout, gradients: true, external }),
    { executionProvider: params.executionProvider, threads: params.threads, logger: params.logger },
  );
  return {
    config,
    slots,
    params: factors,
    session,
    provider,
    reason,
    modelConfig,
    totalParameters,
    trainableParameters: slots.reduce((n, s) => n + s.r * (s.inFeatures + s.outFeatures), 0),
    adapter: () => adapterOf(slots, saved, factors),
    release: () => session.release(),
  };
}
