import type { NodeProto, TensorProto } from "../onnx/onnx-codec.js";

/**
 * Drops the nodes no graph output depends on (e.g. the input gradient of the lowest block, or the
 * whole backward pass of an evaluation graph), then the initializers nothing reads. Nodes must be in
 * topological order, as GraphBuilder emits them.
 */
export function pruneGraph(
  nodes: readonly NodeProto[],
  initializers: readonly TensorProto[],
  outputs: readonly string[],
): { nodes: NodeProto[]; initializers: TensorProto[] } {
  const needed = new Set(outputs);
  const kept: NodeProto[] = [];
  for (let i = nodes.length - 1; i >= 0; i--) {
    const node = nodes[i]!;
    if (!node.output.some((o) => needed.has(o))) continue;
    kept.push(node);
    for (const input of node.input) if (input) needed.add(input);
  }
  kept.reverse();
  return { nodes: kept, initializers: initializers.filter((t) => needed.has(t.name)) };
}
