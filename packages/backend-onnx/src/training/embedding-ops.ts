import type { GraphBuilder } from "../export/graph-builder.js";

/**
 * Full fine-tuning: the gradient of an embedding table [rows, hidden] read by a Gather at `indices`
 * (any int64 shape), for dy [tokens, hidden] in the same order: dy's rows added into zeros at their
 * indices, one ScatterND with reduction "add" (opset 16+), so repeated tokens sum.
 */
export function embeddingGradient(g: GraphBuilder, scope: string, table: string, indices: string, dy: string): string {
  const s = `/grad${scope}`;
  const zeros = g.one(s, "ConstantOfShape", [g.one(s, "Shape", [table])]);
  const rows = g.one(s, "Reshape", [indices, g.constInts([-1, 1])]);
  return g.one(s, "ScatterND", [zeros, rows, dy], { reduction: "add" });
}

/**
 * Full fine-tuning: GPT-2's learned positions [positions, hidden], read at 0 … seq − 1 for every row
 * of the batch: dy [batch·seq, hidden] summed over the batch, put in the first seq rows.
 */
export function positionEmbeddingGradient(
  g: GraphBuilder,
  scope: string,
  p: { table: string; positions: string; seq: string; hidden: number },
  dy: string,
): string {
  const s = `/grad${scope}`;
  const byRow = g.one(s, "Reshape", [dy, g.one(s, "Concat", [g.constInts([-1]), p.seq, g.constInts([p.hidden])], { axis: 0 })]);
  const summed = g.one(s, "ReduceSum", [byRow, g.constInts([0])], { keepdims: 0 });
  return embeddingGradient(g, scope, p.table, p.positions, summed);
}
