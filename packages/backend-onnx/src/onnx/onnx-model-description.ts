import { collectLoraModules, type LoraAdapter, type ModelDescription, type ModuleInfo, type TensorInfo } from "@lowrank/core";
import { readJsonIfPresent } from "../platform/files.js";
import type { GraphProto } from "./onnx-codec.js";
import { locateWeights, type WeightLocation } from "./locate-weights.js";
import { tensorDims } from "./tensor-data.js";

/** The modules an adapter adapts, with in/out features read from its factors (core's collectLoraModules). */
export function adapterModules(adapter: LoraAdapter): { name: string; inFeatures: number; outFeatures: number; dora: boolean }[] {
  return [...collectLoraModules(adapter).modules.values()].map(({ name, inFeatures, outFeatures, magnitude }) => ({
    name,
    inFeatures,
    outFeatures,
    dora: magnitude !== undefined,
  }));
}

/** The model type of an ONNX export from the config.json beside it (Optimum's layout), if any. */
export function onnxModelType(modelDir: string | undefined): string | undefined {
  if (modelDir === undefined) return undefined;
  const config = readJsonIfPresent(modelDir, "config.json") as { model_type?: unknown } | undefined;
  return typeof config?.model_type === "string" ? config.model_type : undefined;
}

/**
 * An adapter whose `target_modules` is null names its targets by the model type's PEFT defaults. An
 * ONNX file may come without its config.json: then the modules the adapter has factors for are the
 * targets (PEFT saved exactly those), so the adapter still binds as PEFT would bind it.
 */
function withConcreteTargets(adapter: LoraAdapter, modelType: string | undefined): LoraAdapter {
  if (adapter.config.target_modules !== null || modelType !== undefined) return adapter;
  const leaves = [...new Set(adapterModules(adapter).map((m) => m.name.slice(m.name.lastIndexOf(".") + 1)))];
  return leaves.length === 0 ? adapter : { ...adapter, config: { ...adapter.config, target_modules: leaves } };
}

/**
 * A core ModelDescription of an ONNX graph, as far as an adapter needs it: its modules where the
 * graph holds their weights (kind from the stored orientation: `in_out` weights are merged the way
 * Conv1D's are), and every initializer by name (for modules_to_save tensors). The model type comes
 * from a config.json in `modelDir`; `adapter` is the one to bind (targets made concrete when the
 * adapter leaves them to a model type the graph does not state).
 */
export function describeOnnxForAdapter(
  graph: GraphProto,
  given: LoraAdapter,
  label: string,
  modelDir?: string,
): { description: ModelDescription; locations: Map<string, WeightLocation>; adapter: LoraAdapter } {
  const modelType = onnxModelType(modelDir);
  const adapter = withConcreteTargets(given, modelType);
  const locations = locateWeights(graph, adapterModules(adapter), label);
  const tensors = new Map<string, TensorInfo>();
  for (const t of graph.initializer) tensors.set(t.name, { dtype: "F32", shape: tensorDims(t) });
  const modules: ModuleInfo[] = [];
  const seen = new Set<string>();
  for (const loc of locations.values()) {
    const dims = tensorDims(loc.initializer);
    const [inFeatures, outFeatures] = loc.layout === "in_out" ? dims : [dims[1], dims[0]];
    const parts = loc.module.split(".");
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join(".");
      if (!seen.has(parent)) modules.push({ name: parent, kind: "container" });
      seen.add(parent);
    }
    const kind = loc.kind === "embedding" ? "embedding" : loc.layout === "in_out" ? "conv1d" : "linear";
    modules.push({ name: loc.module, kind, inFeatures, outFeatures, weightKey: loc.initializer.name, layout: loc.layout });
    seen.add(loc.module);
    tensors.set(`${loc.module}.weight`, { dtype: "F32", shape: dims });
  }
  const description: ModelDescription = {
    modelType,
    architectures: [],
    modules,
    byName: new Map(modules.map((m) => [m.name, m])),
    tensors,
    outputHead: undefined,
    config: {},
  };
  return { description, locations, adapter };
}
