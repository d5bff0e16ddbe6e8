import { bindAdapter, LowrankError, mergeLora, toFloat32, type LoraAdapter, type Logger } from "@lowrank/core";
import type { ModelProto } from "./onnx-codec.js";
import { initializerForKey } from "./locate-weights.js";
import { describeOnnxForAdapter } from "./onnx-model-description.js";
import { readFloatTensor, writeFloatTensor } from "./tensor-data.js";

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
    const init = initializerForKey(model.graph, key);
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
