import {
  LowrankError, optimizerStateBytes, OPTIMIZER_FILE, readTrainingCheckpoint, toFloat32, TRAINER_STATE_FILE, trainerStateText,
  writeAdapter, type LoraAdapter, type StepLog,
} from "@lowrank/core";
import type { OnnxLoraTrainer } from "./onnx-trainer.js";

/**
 * Saves what a run needs to continue exactly, in the tfjs trainer's checkpoint format: the PEFT
 * adapter folder with trainer_state.json and optimizer.safetensors beside it (so either backend can
 * resume it). The folder appears complete or not at all.
 */
export async function saveOnnxCheckpoint(params: { dir: string; adapter: LoraAdapter; trainer: OnnxLoraTrainer; seed: number; log: StepLog[] }): Promise<void> {
  const { trainer } = params;
  const state = trainerStateText({ step: trainer.currentStep, total_steps: trainer.totalSteps, seed: params.seed, kind: "lora", log: params.log });
  await writeAdapter(params.dir, params.adapter, { [TRAINER_STATE_FILE]: state, [OPTIMIZER_FILE]: optimizerStateBytes(trainer.getState().optimizer) });
}

/**
 * Restores a checkpoint into a run set up the same way (same model, LoRA config and seed): the
 * saved factors into `trainer.params`, then the optimizer state and step. Returns the saved log.
 * @throws LowrankError USAGE when the checkpoint does not belong to this run.
 */
export async function restoreOnnxCheckpoint(dir: string, trainer: OnnxLoraTrainer): Promise<StepLog[]> {
  const { state, weights, optimizer } = await readTrainingCheckpoint(dir, "lora");
  for (const [name, values] of trainer.params) {
    const saved = weights.get(name);
    const count = saved?.shape.reduce((a, b) => a * b, 1);
    if (!saved || count !== values.length) {
      throw new LowrankError("USAGE", `--resume ${dir}: parameter "${name}" is ${saved ? `[${saved.shape}]` : "missing"} in the checkpoint but has ${values.length} values in this run; use the same model and LoRA settings`);
    }
    values.set(toFloat32(saved));
  }
  trainer.setState({ step: state.step, optimizer });
  return state.log ?? [];
}
