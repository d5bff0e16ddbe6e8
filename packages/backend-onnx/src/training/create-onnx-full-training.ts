import { stat } from "node:fs/promises";
import type * as ort from "onnxruntime-node";
import { Checkpoint, float32Tensor, LowrankError, type Logger, type Tensor } from "@lowrank/core";
import type { ExecutionProvider } from "../session/ort-session.js";
import { trainingArchitecture, trainingTask, type TrainingTask } from "./architectures.js";
import { buildTrainingGraph, type TrainedParameter, type TrainingArchitecture } from "./training-graph.js";
import { openGraphSession } from "./training-session.js";

/** Every parameter of a model ready to train on ONNX Runtime (full fine-tuning), and the session of its graph. */
export interface OnnxFullTraining {
  /** What the graph's loss is: causal LM, or (encoders) sequence classification. */
  task: TrainingTask;
  /** The parameters by checkpoint name: float32 values (updated in place by the trainer) and shapes. */
  parameters: Map<string, TrainedParameter>;
  /** The same values by name, as the optimizer takes them. */
  params: Map<string, Float32Array>;
  session: ort.InferenceSession;
  /** The execution provider the session runs on, and why (requested, or the CUDA failure). */
  provider: ExecutionProvider;
  reason: string;
  /** config.json of the model. */
  modelConfig: Record<string, unknown>;
  trainableParameters: number;
  totalParameters: number;
  /** Copies of the current values under the checkpoint's names, float32, for a full checkpoint's model.safetensors. */
  tensors(): Map<string, Tensor>;
  release(): Promise<void>;
}

/**
 * What a full fine-tuning run on ONNX Runtime would train, without building anything: the task
 * (`task`, else the model type's), the architecture of the checkpoint's model type and its parameter count.
 * @throws LowrankError USAGE for an ONNX file or a task the model does not fit, CHECKPOINT_INVALID /
 *   TARGET_UNSUPPORTED naming what the ONNX trainer cannot train.
 */
export async function planOnnxFullTraining(params: {
  model: string;
  task?: TrainingTask;
}): Promise<{ task: TrainingTask; architecture: TrainingArchitecture; modelConfig: Record<string, unknown>; totalParameters: number }> {
  if ((await stat(params.model).catch(() => undefined))?.isFile()) {
    throw new LowrankError(
      "USAGE",
      `--model ${params.model}: the onnx trainer builds its graph from a Hugging Face model folder (config.json + safetensors), not an ONNX file`,
    );
  }
  const checkpoint = await Checkpoint.open(params.model);
  let totalParameters = 0;
  try {
    for (const t of checkpoint.tensorInfo().values())
      if (["F32", "F16", "BF16", "F64"].includes(t.dtype)) totalParameters += t.shape.reduce((a, b) => a * b, 1);
  } finally {
    await checkpoint.close();
  }
  const modelConfig = checkpoint.config;
  const architecture = trainingArchitecture(modelConfig, params.model);
  return { task: trainingTask(modelConfig, params.task, params.model), architecture, modelConfig, totalParameters };
}

/**
 * Full fine-tuning on ONNX Runtime: builds the loss-and-gradients graph of a Hugging Face checkpoint
 * with every parameter a graph input (not an initializer: ONNX Runtime reads the Float32Arrays the
 * optimizer updates in place, so the weights exist once) and a `<name>.grad` output for each, and
 * opens one session (CUDA when asked and present, else the CPU).
 * @throws LowrankError USAGE / CHECKPOINT_INVALID as planOnnxFullTraining.
 */
export async function createOnnxFullTraining(params: {
  model: string;
  /** `--task`; without it, the model type's. */
  task?: TrainingTask;
  /** Train on packed sequences (core's packExamples). */
  packed?: boolean;
  /** Recompute each block's activations in the backward pass (gradient checkpointing). */
  recompute?: boolean;
  executionProvider?: ExecutionProvider;
  threads?: number;
  logger?: Logger;
}): Promise<OnnxFullTraining> {
  const { task, architecture, modelConfig, totalParameters } = await planOnnxFullTraining(params);
  const parameters = new Map<string, TrainedParameter>();
  const model = await buildTrainingGraph({
    dir: params.model,
    architecture,
    slots: [],
    dropout: false,
    gradients: true,
    packed: params.packed,
    recompute: params.recompute,
    full: parameters,
  });
  const { session, provider, reason } = await openGraphSession(model, {
    executionProvider: params.executionProvider,
    threads: params.threads,
    logger: params.logger,
  });
  return {
    task,
    parameters,
    params: new Map([...parameters].map(([name, p]) => [name, p.values])),
    session,
    provider,
    reason,
    modelConfig,
    totalParameters,
    trainableParameters: [...parameters.values()].reduce((n, p) => n + p.values.length, 0),
    tensors: () => new Map([...parameters].map(([name, p]) => [name, float32Tensor(p.values.slice(), p.shape)])),
    release: () => session.release(),
  };
}
