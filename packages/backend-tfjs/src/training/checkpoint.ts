import { readFile } from "node:fs/promises";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import {
  copyModelFiles, float32Tensor, LowrankError, readSafetensors, serializeSafetensors, toFloat32, writeAdapter, writeDirectoryAtomic,
  writeFileAtomic, writeSafetensors, type Tensor,
} from "@lowrank/core";
import type { StepLog, Trainer } from "./trainer.js";
import type { TrainableSet, LoraTraining, FullTraining } from "./trainable.js";

export const TRAINER_STATE_FILE = "trainer_state.json";
export const OPTIMIZER_FILE = "optimizer.safetensors";

interface SavedState {
  step: number;
  total_steps: number;
  seed: number;
  kind: "lora" | "full";
  log: StepLog[];
}

function optimizerBytes(trainer: Trainer): Uint8Array {
  const { optimizer } = trainer.getState();
  const tensors = new Map<string, Tensor>();
  for (const [name, values] of optimizer.m) tensors.set(`m/${name}`, float32Tensor(values, [values.length]));
  for (const [name, values] of optimizer.v) tensors.set(`v/${name}`, float32Tensor(values, [values.length]));
  return serializeSafetensors(tensors, { format: "pt", step: String(optimizer.step) });
}

/**
 * Saves everything a run needs to continue exactly: the trained parameters (a PEFT adapter folder,
 * or a full checkpoint with the base's config and tokenizer files), the optimizer's moments and the
 * step. The folder appears complete or not at all.
 */
export async function saveCheckpoint(params: {
  dir: string;
  trainable: LoraTraining | FullTraining;
  trainer: Trainer;
  seed: number;
  log: StepLog[];
  baseDir: string;
}): Promise<void> {
  const { dir, trainable, trainer } = params;
  const state: SavedState = { step: trainer.currentStep, total_steps: trainer.totalSteps, seed: params.seed, kind: trainable.kind, log: params.log };
  const stateText = `${JSON.stringify(state, null, 2)}\n`;
  if (trainable.kind === "lora") {
    await writeAdapter(dir, trainable.exportAdapter({ raw: true }), { [TRAINER_STATE_FILE]: stateText, [OPTIMIZER_FILE]: optimizerBytes(trainer) });
    return;
  }
  await writeDirectoryAtomic(dir, async (temp) => {
    await writeSafetensors(path.join(temp, "model.safetensors"), trainable.exportTensors(), { format: "pt" });
    await writeFileAtomic(path.join(temp, TRAINER_STATE_FILE), stateText);
    await writeFileAtomic(path.join(temp, OPTIMIZER_FILE), optimizerBytes(trainer));
    await copyModelFiles(params.baseDir, temp);
  });
}

/**
 * Restores a checkpoint into a run set up the same way (same model, config and seed): assigns the
 * saved parameters to the trainable variables, then the optimizer state and step.
 * @throws LowrankError USAGE when the checkpoint does not belong to this run.
 */
export async function restoreCheckpoint(dir: string, trainable: TrainableSet, trainer: Trainer): Promise<StepLog[]> {
  let state: SavedState;
  try {
    state = JSON.parse(await readFile(path.join(dir, TRAINER_STATE_FILE), "utf8"));
  } catch (error) {
    throw new LowrankError("USAGE", `--resume ${dir}: no readable ${TRAINER_STATE_FILE} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  if (state.kind !== trainable.kind) throw new LowrankError("USAGE", `--resume ${dir}: a ${state.kind} checkpoint cannot resume a ${trainable.kind} run`);
  const weightsFile = path.join(dir, trainable.kind === "lora" ? "adapter_model.safetensors" : "model.safetensors");
  const { tensors } = await readSafetensors(weightsFile);
  for (const [name, variable] of trainable.variables) {
    const saved = tensors.get(name);
    if (!saved || saved.shape.join(",") !== variable.shape.join(",")) {
      throw new LowrankError("USAGE", `--resume ${dir}: parameter "${name}" is ${saved ? `[${saved.shape}]` : "missing"} in the checkpoint but [${variable.shape}] in this run; use the same model and LoRA settings`);
    }
    const value = tf.tensor(toFloat32(saved), saved.shape);
    variable.assign(value);
    value.dispose();
  }
  const optimizer = await readSafetensors(path.join(dir, OPTIMIZER_FILE));
  const m = new Map<string, Float32Array>();
  const v = new Map<string, Float32Array>();
  for (const [key, t] of optimizer.tensors) (key.startsWith("m/") ? m : v).set(key.slice(2), toFloat32(t));
  trainer.setState({ step: state.step, optimizer: { step: Number(optimizer.metadata?.step ?? state.step), m, v } });
  return state.log ?? [];
}
