import { ropeFrequencies, type RopeScaling } from "@lowrank/core/internal";
import type { GraphBuilder } from "../export/graph-builder.js";
import type { HeadTransform } from "./attention-ops.js";

/**
 * Rotary position embeddings on [batch, seq, heads, d] (transformers' rotate_half convention):
 * y = x·cos + rotate_half(x)·sin with rotate_half(x) = [−x₂, x₁]; the backward is
 * dx = dy·cos + rotate_halfᵀ(dy·sin), rotate_halfᵀ(z) = [z₂, −z₁]. The cos/sin tables [seq, 1, d]
 * are computed in the graph from the positions 0..seq−1.
 */
export function ropeTransform(g: GraphBuilder, params: { headDim: number; theta: number; scaling: unknown; seqScalar: string; label: string }): HeadTransform {
  const { inv, positionScale } = ropeFrequencies(params.headDim, params.theta, (params.scaling ?? null) as RopeScaling | null, `${params.label}/config.json`);
  const s = "/rope";
  const steps = g.one(
    s,
    "Cast",
    [
      g.one(s, "Range", [
        g.one(s, "Squeeze", [g.constInts([0]), g.constInts([0])]),
        params.seqScalar,
        g.one(s, "Squeeze", [g.constInts([1]), g.constInts([0])]),
      ]),
    ],
    { to: 1 },
  );
  const positions = positionScale === 1 ? steps : g.one(s, "Div", [steps, g.constFloat(positionScale)]);
  const angles = g.one(s, "Mul", [
    g.one(s, "Unsqueeze", [positions, g.constInts([1])]),
    g.floatInit("lowrank::rope_inv_freq", Float32Array.from(inv), [inv.length]),
  ]);
  const table = (op: "Cos" | "Sin") => {
    const half = g.one(s, op, [angles]);
    return g.one(s, "Unsqueeze", [g.one(s, "Concat", [half, half], { axis: 1 }), g.constInts([1])]);
  };
  const cos = table("Cos");
  const sin = table("Sin");
  const halves = (scope: string, x: string) => g.op(scope, "Split", [x, g.constInts([params.headDim / 2, params.headDim / 2])], { axis: -1 }, 2);
  return {
    forward(g2, scope, x) {
      const [x1, x2] = halves(scope, x);
      const rotated = g2.one(scope, "Concat", [g2.one(scope, "Neg", [x2!]), x1!], { axis: -1 });
      return g2.one(scope, "Add", [g2.one(scope, "Mul", [x, cos]), g2.one(scope, "Mul", [rotated, sin])]);
    },
    backward(g2, scope, dy) {
      const [z1, z2] = halves(scope, g2.one(scope, "Mul", [dy, sin]));
      return g2.one(scope, "Add", [g2.one(scope, "Mul", [dy, cos]), g2.one(scope, "Concat", [z2!, g2.one(scope, "Neg", [z1!])], { axis: -1 })]);
    },
  };
}
