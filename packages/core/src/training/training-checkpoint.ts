import { readFile } from "node:fs/promises";
import path from "node:path";
import { LowrankError } from "../errors/lowrank-error.js";
import { float32Tensor, toFloat32, type Tensor } from "../formats/safetensors/dtype.js";
import { readSafetensors } from "../formats/safetensors/safetensors-file.js";
import { serializeSafetensors } from "../formats/safetensors/write-safetensors.js";
import type { AdamWState } from "./adamw.js";
import type { StepLog } from "./trainer-types.js";

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
export async function readTrainingCheckpoint(dir: string, kind: "lora" | "full"): Promise<{ state: SavedTrainerState; weights: Map<string, Tensor>; optimizer: AdamWState }> {
  let state: SavedTrainerState;
  try {
    state = JSON.parse(await readFile(path.join(dir, TRAINER_STATE_FILE), "utf8"));
  } catch (error) {
    throw new LowrankError("USAGE", `--resume ${dir}: no readable ${TRAINER_STATE_FILE} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  if (state.kind !== kind) throw new LowrankError("USAGE", `--resume ${dir}: a ${state.kind} checkpoint cannot resume a ${kind} run`);
  const weights = (await readSafetensors(path.join(dir, kind === "lora" ? "adapter_model.safetensors" : "model.safetensors"))).tensors;
  const saved = await readSafetensors(path.join(dir, OPTIMIZER_FILE));
  const m = new Map<string, Float32Array>();
  const v = new Map<string, Float32Array>();
  for (const [key, t] of saved.tensors) (key.startsWith("m/") ? m : v).set(key.slice(2), toFloat32(t));
  return { state, weights, optimizer: { step: Number(saved.metadata?.step ?? state.step), m, v } };
}
