import protobuf from "protobufjs";
import { Checkpoint, LowrankError } from "@lowrank/core";
import { ConfigValues } from "@lowrank/core/internal";
import type { ModelProto, NodeProto, TensorProto, ValueInfoProto } from "../onnx/onnx-codec.js";
import { ONNX_PROTO } from "../onnx/onnx-proto.js";
import { pruneGraph } from "../training/prune-graph.js";
import { GraphBuilder } from "./graph-builder.js";

const ModelProtoType = protobuf.parse(ONNX_PROTO, { keepCase: true }).root.lookupType("onnx.ModelProto");

/** What a graph builder reads from a checkpoint folder: its config and tensors, added once each as float32 initializers. */
export interface CheckpointSource {
  g: GraphBuilder;
  c: ConfigValues;
  config: Record<string, unknown>;
  modelType: string;
  label: string;
  has(name: string): boolean;
  shapeOf(name: string): readonly number[] | undefined;
  /** Adds a checkpoint tensor as a float32 initializer under its own name (once) and returns the name. */
  weight(name: string): Promise<string>;
}

/**
 * Opens the checkpoint in `dir`, checks its model_type is one of `supported`, and runs `build` with
 * a fresh GraphBuilder over it; the checkpoint is closed afterwards.
 * @throws LowrankError CHECKPOINT_INVALID naming the folder for another model type or a missing tensor.
 */
export async function fromCheckpoint<T>(dir: string, supported: readonly string[], what: string, build: (source: CheckpointSource) => Promise<T>): Promise<T> {
  const checkpoint = await Checkpoint.open(dir);
  try {
    const config = checkpoint.config;
    const modelType = typeof config.model_type === "string" ? config.model_type : "";
    if (!supported.includes(modelType))
      throw new LowrankError("CHECKPOINT_INVALID", `${dir}: model_type ${JSON.stringify(modelType)} has no ${what} (supported: ${supported.join(", ")})`);
    const g = new GraphBuilder();
    const info = checkpoint.tensorInfo();
    const loaded = new Set<string>();
    return await build({
      g,
      c: new ConfigValues(config, dir),
      config,
      modelType,
      label: dir,
      has: (name) => info.has(name),
      shapeOf: (name) => info.get(name)?.shape,
      weight: async (name) => {
        if (loaded.has(name)) return name;
        const t = info.get(name);
        if (!t) throw new LowrankError("CHECKPOINT_INVALID", `${dir}: missing tensor "${name}"`);
        loaded.add(name);
        return g.floatInit(name, await checkpoint.readFloat32(name), t.shape);
      },
    });
  } finally {
    await checkpoint.close();
  }
}

/** An opset-17 model of the graph's nodes that `output` needs (pruned), with these inputs and outputs. */
export function inferenceModel(g: GraphBuilder, name: string, input: ValueInfoProto[], output: ValueInfoProto[]): ModelProto {
  const { nodes, initializers } = pruneGraph(
    g.nodes,
    g.initializers,
    output.map((o) => o.name),
  );
  const graph: { name: string; node: NodeProto[]; initializer: TensorProto[]; input: ValueInfoProto[]; output: ValueInfoProto[]; value_info: [] } = {
    name,
    node: nodes,
    initializer: initializers,
    input,
    output,
    value_info: [],
  };
  return ModelProtoType.fromObject({ ir_version: 8, producer_name: "lowrank", opset_import: [{ domain: "", version: 17 }], graph }) as unknown as ModelProto;
}
