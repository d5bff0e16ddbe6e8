import { ropeFrequencies, type RopeScaling } from "@lowrank/core/internal";
import type { GraphBuilder } from "../export/graph-builder.js";
import type { HeadTransform } from "./attention-ops.js";

/** cos and sin of every position's rotary angles, [...positions, 1, headDim] (the 1 broadcasts over heads). */
export interface RopeTables {
  cos: string;
  sin: string;
}

/**
 * The rotary tables for `positions`, a float32 tensor of any shape ([seq] when training, the
 * position_ids [batch, seq] when generating): angles = position / positionScale · inv_freq, the
 * halves repeated as transformers' rotate_half convention needs.
 */
export function ropeTables(g: GraphBuilder, params: { headDim: number; theta: number; scaling: unknown; positions: string; label: string }): RopeTables {
  const { inv, positionScale } = ropeFrequencies(params.headDim, params.theta, (params.scaling ?? null) as RopeScaling | null, `${params.label}/config.json`);
  const s = "/rope";
  const positions = positionScale === 1 ? params.positions : g.one(s, "Div", [params.positions, g.constFloat(positionScale)]);
  const angles = g.one(s, "Mul", [
    g.one(s, "Unsqueeze", [positions, g.constInts([-1])]),
    g.floatInit("lowrank::rope_inv_freq", Float32Array.from(inv), [inv.length]),
  ]);
  const table = (op: "Cos" | "Sin") => {
    const half = g.one(s, op, [angles]);
    return g.one(s, "Unsqueeze", [g.one(s, "Concat", [half, half], { axis: -1 }), g.constInts([-2])]);
  };
  return { cos: table("Cos"), sin: table("Sin") };
}

/**
 * Rotary position embeddings on [batch, seq, heads, d] (transformers' rotate_half convention):
 * y = x·cos + rotate_half(x)·sin with rotate_half(x) = [−x₂, x₁]; the backward is
 * dx = dy·cos + rotate_halfᵀ(dy·sin), rotate_halfᵀ(z) = [z₂, −z₁].
 */
export function rotary(tables: RopeTables, headDim: number): HeadTransform {
  const { cos, sin } = tables;
  const halves = (g: GraphBuilder, scope: string, x: string) => g.op(scope, "Split", [x, g.constInts([headDim / 2, headDim / 2])], { axis: -1 }, 2);
  return {
    forward(g, scope, x) {
      const [x1, x2] = halves(g, scope, x);
      const rotated = g.one(scope, "Concat", [g.one(scope, "Neg", [x2!]), x1!], { axis: -1 });
      return g.one(scope, "Add", [g.one(scope, "Mul", [x, cos]), g.one(scope, "Mul", [rotated, sin])]);
    },
    backward(g, scope, dy) {
      const [z1, z2] = halves(g, scope, g.one(scope, "Mul", [dy, sin]));
      return g.one(scope, "Add", [g.one(scope, "Mul", [dy, cos]), g.one(scope, "Concat", [z2!, g.one(scope, "Neg", [z1!])], { axis: -1 })]);
    },
  };
}
