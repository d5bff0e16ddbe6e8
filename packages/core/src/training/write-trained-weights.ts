import path from "node:path";
import { writeAdapter } from "../adapter/write-adapter.js";
import { writeDirectoryAtomic, writeFileAtomic } from "../formats/atomic-write.js";
import { writeSafetensors } from "../formats/safetensors/write-safetensors.js";
import { copyModelFiles, WEIGHT_FILE } from "../merge/merge-checkpoint.js";
import type { TrainedWeights } from "./training-stepper.js";

/** The weights file of a full fine-tuning checkpoint. */
const FULL_WEIGHTS_FILE = "model.safetensors";

/**
 * Writes a run's trained parameters as a folder that appears complete or not at all: a PEFT adapter
 * folder, or a full checkpoint (model.safetensors with the other files of the base model folder
 * `baseDir`, such as config and tokenizer). `files` (training state, summary) go beside them.
 * @param options.removeStaleWeights full checkpoints only: remove weight files already in `dir` that the new ones do not replace.
 * @throws what the file system throws; `dir` is then left as it was.
 */
export async function writeTrainedWeights(
  dir: string,
  weights: TrainedWeights,
  options: { baseDir: string; files: Record<string, string | Uint8Array>; removeStaleWeights?: boolean },
): Promise<void> {
  if (weights.kind === "lora") {
    await writeAdapter(dir, weights.adapter, options.files);
    return;
  }
  await writeDirectoryAtomic(
    dir,
    async (temp) => {
      await writeSafetensors(path.join(temp, FULL_WEIGHTS_FILE), weights.tensors, { format: "pt" });
      // The base's files first, so that the run's own files replace any of the same name.
      await copyModelFiles(options.baseDir, temp);
      for (const [name, content] of Object.entries(options.files)) await writeFileAtomic(path.join(temp, name), content);
    },
    options.removeStaleWeights ? { removeStale: WEIGHT_FILE } : {},
  );
}
