import * as ort from "onnxruntime-node";
import { bindAdapter, silentLogger, toFloat32, type BoundAdapter, type Logger } from "@lowrank/core";
import { EXTERNAL_LOCATION, type GraphProto, type TensorProto } from "../onnx/onnx-codec.js";
import type { describeOnnxForAdapter } from "../onnx/onnx-model-description.js";
import { initializerForKey } from "../onnx/locate-weights.js";
import { readFloatTensor, tensorDims } from "../onnx/tensor-data.js";
import { valueFingerprint } from "./value-fingerprint.js";

function sameValues(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Whether a graph's initializer still has its values (a session's graph keeps few of them). */
function holdsValues(t: TensorProto): boolean {
  return t.data_location === EXTERNAL_LOCATION || (t.raw_data?.byteLength ?? 0) > 0 || (t.float_data?.length ?? 0) > 0;
}

/** An adapter prepared for a graph; `fingerprints` stand for the values a session's graph no longer holds. */
export type RuntimeTarget = ReturnType<typeof describeOnnxForAdapter> & {
  graph: GraphProto;
  modelDir: string;
  fingerprints?: ReadonlyMap<string, string>;
};

/**
 * Binds an adapter (as `describeOnnxForAdapter` prepared it) to an ONNX graph for runtime use (core's binding: targets, scalings, shapes) and
 * returns the tensors it replaces as ready-to-feed ONNX Runtime tensors in the initializers' shapes,
 * by the graph's initializer names (a wrapper module's export prefixes them: initializerForKey).
 * A saved copy equal to the stored tensor (PEFT's save_embedding_layers) is left out: it changes nothing.
 */
export function bindRuntimeAdapter(
  name: string,
  target: RuntimeTarget,
  logger: Logger = silentLogger,
): { modules: BoundAdapter["modules"]; replacements: Map<string, ort.Tensor> } {
  const bound = bindAdapter(target.adapter, target.description, { logger, label: `adapter "${name}"`, layoutFromStorage: true });
  const replacements = new Map<string, ort.Tensor>();
  for (const [key, tensor] of bound.replacements) {
    const init = initializerForKey(target.graph, key);
    const values = toFloat32(tensor, key);
    const fingerprint = init && target.fingerprints?.get(init.name);
    const unchanged = !init
      ? false
      : holdsValues(init)
        ? sameValues(readFloatTensor(init, target.modelDir), values)
        : fingerprint === valueFingerprint(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
    if (unchanged) continue;
    replacements.set(init?.name ?? key, new ort.Tensor("float32", values, init ? tensorDims(init) : tensor.shape));
  }
  return { modules: bound.modules, replacements };
}
