// One ONNX Runtime session, several adapters: each request picks its adapter (or the base model).
import { LowrankError, readAdapter } from "@lowrank/core";
import { idsTensor, OnnxLoraSession } from "@lowrank/backend-onnx";

export async function serveSeveralAdapters(options: {
  model: string;
  adapters: Record<string, string>;
  ids: number[][];
}): Promise<Record<string, Float32Array>> {
  const loaded = Object.fromEntries(await Promise.all(Object.entries(options.adapters).map(async ([name, dir]) => [name, await readAdapter(dir)] as const)));
  const session = await OnnxLoraSession.create(options.model, { adapters: loaded });
  const results: Record<string, Float32Array> = {};
  try {
    for (const name of [...Object.keys(loaded), null]) {
      const out = await session.run({ input_ids: idsTensor(options.ids) }, { adapter: name });
      if (!out.logits) throw new LowrankError("CHECKPOINT_INVALID", `${options.model}: the model has no "logits" output`);
      results[name ?? "base"] = out.logits.data as Float32Array;
    }
  } finally {
    await session.release();
  }
  return results;
}
