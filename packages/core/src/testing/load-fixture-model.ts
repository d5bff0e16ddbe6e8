import { Checkpoint } from "../formats/checkpoint.js";
import { describeModel } from "../model/describe-model.js";
import type { ModelDescription } from "../model/model-description.js";
import { requireFixture } from "./fixtures.js";

/** The module tree of a fixture base model (reads only the safetensors header). */
export async function loadFixtureModel(base: string): Promise<ModelDescription> {
  const checkpoint = await Checkpoint.open(requireFixture(base));
  try {
    return describeModel(checkpoint.config, checkpoint.tensorInfo());
  } finally {
    await checkpoint.close();
  }
}
