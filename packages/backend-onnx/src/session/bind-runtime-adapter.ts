import * as ort from "onnxruntime-node";
import { bindAdapter, silentLogger, toFloat32, type BoundAdapter, type Logger } from "@lowrank/core";
import type { GraphProto } from "../onnx/onnx-codec.js";
import type { describeOnnxForAdapter } from "../onnx/onnx-model-description.js";
import { readFloatTensor, tensorDims } from "../onnx/tensor-data.js";

function sameValues(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * Binds an adapter (as `describeOnnxForAdapter` prepared it) to an ONNX graph for runtime use (core's binding: targets, scalings, shapes) and
 * returns the tensors it replaces as ready-to-feed ONNX Runtime tensors in the initializers' shapes.
 * A saved copy equal to the stored tensor (PEFT's save_embedding_layers) is left out: it changes nothing.
 */
export function bindRuntimeAdapter(
  name: string,
  target: ReturnType<typeof describeOnnxForAdapter> & { graph: GraphProto; modelDir: string },
  logger: Logger = silentLogger,
): { modules: BoundAdapter["modules"]; replacements: Map<string, ort.Tensor> } {
  const bound = bindAdapter(target.adapter, target.description, { logger, label: `adapter "${name}"`, layoutFromStorage: true });
  const replacements = new Map<string, ort.Tensor>();
  for (const [key, tensor] of bound.replacements) {
    const init = target.graph.initializer.find((t) => t.name === key);
    const values = toFloat32(tensor, key);
    if (init && sameValues(readFloatTensor(init, target.modelDir), values)) continue;
    replacements.set(key, new ort.Tensor("float32", values, init ? tensorDims(init) : tensor.shape));
  }
  return { modules: bound.modules, replacements };
}
