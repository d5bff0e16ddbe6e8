import { readFile } from "node:fs/promises";
import path from "node:path";
import { LowrankError } from "../errors/lowrank-error.js";
import { float32Tensor, toFloat32, type Tensor } from "../formats/safetensors/dtype.js";
import { readSafetensors } from "../formats/safetensors/safetensors-file.js";
import { serializeSafetensors } from "../formats/safetensors/write-safetensors.js";
import type { AdamWState } from "./adamw.js";
import type { StepLog } from "./trainer-types.js";
import type { CheckpointWeights, TrainingStepper } from "./training-stepper.js";
import { writeTrainedWeights } from "./write-trained-weights.js";

/** Files a resumable training checkpoint adds to the adapter (or full checkpoint) folder. */
export const TRAINER_STATE_FILE = "trainer_state.json";
export const OPTIMIZER_FILE = "optimizer.safetensors";

/** trainer_state.json. */
export interface SavedTrainerState {
  step: number;
  total_steps: number;
  seed: number;
  kind: "lora" | "full";
  log: StepLog[];
}

/** @returns trainer_state.json's text (indent 2, final newline). */
export function trainerStateText(state: SavedTrainerState): string {
  return `${JSON.stringify(state, null, 2)}\n`;
}

/** optimizer.safetensors: the moments as flat float32 tensors `m/<name>`, `v/<name>`, the step in the metadata. */
export function optimizerStateBytes(state: AdamWState): Uint8Array {
  const tensors = new Map<string, Tensor>();
  for (const [name, values] of state.m) tensors.set(`m/${name}`, float32Tensor(values, [values.length]));
  for (const [name, values] of state.v) tensors.set(`v/${name}`, float32Tensor(values, [values.length]));
  return serializeSafetensors(tensors, { format: "pt", step: String(state.step) });
}

/**
 * Reads a checkpoint folder written with the two files above: its trainer state, the saved
 * parameters (`weightsFile` inside it) and the optimizer state.
 * @throws LowrankError USAGE when the folder is not a checkpoint of a `kind` run.
 */
export async function readTrainingCheckpoint(
  dir: string,
  kind: "lora" | "full",
): Promise<{ state: SavedTrainerState; weights: Map<string, Tensor>; optimizer: AdamWState }> {
  let state: SavedTrainerState;
  try {
    state = JSON.parse(await readFile(path.join(dir, TRAINER_STATE_FILE), "utf8"));
  } catch (error) {
    throw new LowrankError(
      "USAGE",
      `--resume ${dir}: no readable ${TRAINER_STATE_FILE} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
    );
  }
  if (state.kind !== kind) throw new LowrankError("USAGE", `--resume ${dir}: a ${state.kind} checkpoint cannot resume a ${kind} run`);
  const weights = (await readSafetensors(path.join(dir, kind === "lora" ? "adapter_model.safetensors" : "model.safetensors"))).tensors;
  const saved = await readSafetensors(path.join(dir, OPTIMIZER_FILE));
  const m = new Map<string, Float32Array>();
  const v = new Map<string, Float32Array>();
  for (const [key, t] of saved.tensors) (key.startsWith("m/") ? m : v).set(key.slice(2), toFloat32(t));
  return { state, weights, optimizer: { step: Number(saved.metadata?.step ?? state.step), m, v } };
}

/**
 * One saved parameter of a checkpoint as float32 values, checked against the run it resumes.
 * @param expected the parameter's shape in this run, or (for flat arrays) its element count.
 * @returns the saved values.
 * @throws LowrankError USAGE when the checkpoint lacks the parameter or holds it with another shape.
 */
export function savedParameter(checkpoint: CheckpointWeights, name: string, expected: readonly number[] | number): Float32Array {
  const saved = checkpoint.weights.get(name);
  const fits = typeof expected === "number" ? saved?.shape.reduce((a, b) => a * b, 1) === expected : saved?.shape.join(",") === expected.join(",");
  if (!saved || !fits) {
    const here = typeof expected === "number" ? `has ${expected} values` : `[${expected}]`;
    throw new LowrankError(
      "USAGE",
      `--resume ${checkpoint.dir}: parameter "${name}" is ${saved ? `[${saved.shape}]` : "missing"} in the checkpoint but ${here} in this run; use ` +
        `the same model and LoRA settings`,
    );
  }
  return toFloat32(saved);
}

/**
 * Saves what a run needs to continue exactly into `dir`: the trained parameters as trained (a PEFT
 * adapter folder, or a full checkpoint with `baseDir`'s config and tokenizer files), trainer_state.json
 * and optimizer.safetensors. Either backend can resume it. The folder appears complete or not at all.
 */
export async function saveTrainingCheckpoint(
  dir: string,
  stepper: Pick<TrainingStepper, "kind" | "trainer" | "weights">,
  run: { seed: number; log: StepLog[]; baseDir: string },
): Promise<void> {
  const { step, optimizer } = stepper.trainer.getState();
  const state = trainerStateText({ step, total_steps: stepper.trainer.totalSteps, seed: run.seed, kind: stepper.kind, log: run.log });
  await writeTrainedWeights(dir, stepper.weights({ checkpoint: true }), {
    baseDir: run.baseDir,
    files: { [TRAINER_STATE_FILE]: state, [OPTIMIZER_FILE]: optimizerStateBytes(optimizer) },
  });
}

/**
 * Restores the checkpoint in `dir` into a run set up the same way (same model, config and seed): the
 * saved weights into the trained parameters, then the step and optimizer state into the trainer.
 * @returns the saved step log.
 * @throws LowrankError USAGE when the folder is not a checkpoint of this run.
 */
export async function restoreTrainingCheckpoint(dir: string, stepper: Pick<TrainingStepper, "kind" | "trainer" | "restoreWeights">): Promise<StepLog[]> {
  const { state, weights, optimizer } = await readTrainingCheckpoint(dir, stepper.kind);
  stepper.restoreWeights({ dir, weights });
  stepper.trainer.setState({ step: state.step, optimizer });
  return state.log ?? [];
}
