import { readFile } from "node:fs/promises";
import path from "node:path";
import { bindAdapter, LowrankError, mergeLora, toFloat32, type LoraAdapter, type Logger } from "@lowrank/core";
import { decodeModel, type ModelProto } from "./onnx-codec.js";
import { describeOnnxForAdapter } from "./onnx-model-description.js";
import { readFloatTensor, writeFloatTensor } from "./tensor-data.js";
import { writeOnnx } from "./write-onnx.js";

export interface MergedOnnx {
  model: ModelProto;
  mergedModules: string[];
  replacedTensors: string[];
}

/**
 * Adds each adapted module's ΔW (core's math, DoRA included) to its initializer in the ONNX graph,
 * in the layout the graph stores it; modules_to_save tensors replace initializers of the same name.
 * Shared initializers are copied first; nothing else in the graph changes.
 * @throws LowrankError when a module cannot be mapped or does not fit.
 */
export function mergeIntoOnnxModel(
  model: ModelProto,
  adapter: LoraAdapter,
  options: { modelDir: string; safe?: boolean; logger?: Logger; label?: string },
): MergedOnnx {
  const label = options.label ?? "model.onnx";
  const { description, adapter: bindable } = describeOnnxForAdapter(model.graph, adapter, label, options.modelDir);
  const bound = bindAdapter(bindable, description, { logger: options.logger, label: "adapter", layoutFromStorage: true });
  const byName = new Map(model.graph.initializer.map((t) => [t.name, t]));
  // Replacements first (a saved base_layer copy of an embedding is replaced, then its LoRA merged on top).
  for (const [key, tensor] of bound.replacements) {
    const init = byName.get(key);
    if (!init) throw new LowrankError("ADAPTER_INVALID", `adapter: "${key}" has no initializer of that name in ${label}`);
    writeFloatTensor(init, toFloat32(tensor, key));
  }
  for (const m of bound.modules) {
    const init = byName.get(m.plan.module.weightKey!)!;
    const values = readFloatTensor(init, options.modelDir);
    mergeLora(values, m.factors, { safe: options.safe, label: `${label}: module ${m.plan.name}` });
    writeFloatTensor(init, values);
  }
  return { model, mergedModules: bound.modules.map((m) => m.plan.name), replacedTensors: [...bound.replacements.keys()] };
}

/** `lowrank onnx merge`: reads an ONNX file, merges the adapter, writes the result atomically. */
export async function mergeOnnxFile(params: {
  model: string;
  adapter: LoraAdapter;
  out: string;
  safe?: boolean;
  logger?: Logger;
}): Promise<MergedOnnx & { bytes: number }> {
  if (path.resolve(params.out) === path.resolve(params.model))
    throw new LowrankError("USAGE", "--out must differ from --model (the base model is never overwritten)");
  let bytes: Uint8Array;
  try {
    bytes = await readFile(params.model);
  } catch (error) {
    throw new LowrankError("CHECKPOINT_INVALID", `${params.model}: cannot read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  const model = decodeModel(bytes, params.model);
  const modelDir = path.dirname(params.model);
  const merged = mergeIntoOnnxModel(model, params.adapter, { modelDir, safe: params.safe, logger: params.logger, label: params.model });
  const written = await writeOnnx(params.out, merged.model, { sourceDir: modelDir });
  return { ...merged, bytes: written.bytes };
}
