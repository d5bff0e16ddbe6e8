import { LowrankError } from "@lowrank/core";
import { floatValueInfo, ONNX_FLOAT, type GraphProto } from "./onnx-codec.js";
import { readFloatTensor, tensorDims } from "./tensor-data.js";

/**
 * Turns initializers into graph inputs (same name, type and shape) and returns their stored values,
 * which the caller feeds whenever it has nothing else to feed. Used for the whole tensors adapters
 * replace (trained biases, modules_to_save copies). onnxruntime-node cannot feed an initializer
 * that is merely listed as an input, so the initializer is removed from the graph.
 * @throws LowrankError ADAPTER_INVALID when a name has no float32 initializer in the graph.
 */
export function initializersAsInputs(
  graph: GraphProto,
  names: readonly string[],
  modelDir: string,
  label: string,
): Map<string, { values: Float32Array; dims: number[] }> {
  const stored = new Map<string, { values: Float32Array; dims: number[] }>();
  for (const name of new Set(names)) {
    const index = graph.initializer.findIndex((t) => t.name === name);
    const init = graph.initializer[index];
    if (!init) throw new LowrankError("ADAPTER_INVALID", `${label}: the adapter replaces "${name}", but the graph has no initializer of that name`);
    if (init.data_type !== ONNX_FLOAT)
      throw new LowrankError(
        "ADAPTER_INVALID",
        `${label}: the adapter replaces "${name}", a data type ${init.data_type} initializer; only float32 tensors can be replaced at run time`,
      );
    const dims = tensorDims(init);
    stored.set(name, { values: readFloatTensor(init, modelDir), dims });
    graph.initializer.splice(index, 1);
    graph.input = graph.input.filter((i) => i.name !== name);
    graph.input.push(floatValueInfo(name, dims));
  }
  return stored;
}
