import type { GraphProto } from "./onnx-codec.js";
import { onnxModelType } from "./onnx-model-description.js";
import { readFileSync } from "node:fs";
import path from "node:path";
import { tensorDims } from "./tensor-data.js";

/**
 * The vocabulary size of an ONNX language model: the rows of the embedding table that `input_ids`
 * index (a Gather on the ids, directly or through a Cast), else `vocab_size` from a config.json in
 * `modelDir`. Undefined when neither says.
 */
export function onnxVocabSize(graph: GraphProto, modelDir: string | undefined): number | undefined {
  const ids = new Set(["input_ids"]);
  for (const node of graph.node) {
    const [input] = node.input;
    const [output] = node.output;
    if (node.op_type === "Cast" && input !== undefined && output !== undefined && ids.has(input)) ids.add(output);
  }
  const tables = new Map(graph.initializer.map((t) => [t.name, t]));
  for (const node of graph.node) {
    const [data, indices] = node.input;
    if (node.op_type !== "Gather" || indices === undefined || !ids.has(indices)) continue;
    const table = data === undefined ? undefined : tables.get(data);
    if (table) return tensorDims(table)[0];
  }
  if (modelDir === undefined || onnxModelType(modelDir) === undefined) return undefined;
  try {
    const vocab = (JSON.parse(readFileSync(path.join(modelDir, "config.json"), "utf8")) as { vocab_size?: unknown }).vocab_size;
    return typeof vocab === "number" && Number.isInteger(vocab) && vocab > 0 ? vocab : undefined;
  } catch {
    return undefined;
  }
}
