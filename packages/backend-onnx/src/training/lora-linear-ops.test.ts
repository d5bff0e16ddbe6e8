import protobuf from "protobufjs";
import * as ort from "onnxruntime-node";
import { describe, expect, test } from "vitest";
import { SeededRandom } from "@lowrank/core/internal";
import { maxAbsDiff } from "@lowrank/core/testing";
import { GraphBuilder } from "../export/graph-builder.js";
import { encodeModel, floatValueInfo, type ModelProto } from "../onnx/onnx-codec.js";
import { ONNX_PROTO } from "../onnx/onnx-proto.js";
import { linearBackward, linearForward, type FrozenLinear } from "./lora-linear-ops.js";

const ModelProtoType = protobuf.parse(ONNX_PROTO, { keepCase: true }).root.lookupType("onnx.ModelProto");

const [T, IN, OUT, R, S] = [5, 6, 4, 2, 1.5];

/**
 * DoRA in float64 as PEFT computes it, with the weight norm n (per output feature) given — held
 * constant, as PEFT detaches it: y = x·W + b + (m/n − 1)·(d(x)·W) + (m/n)·s·d(x)·Aᵀ·Bᵀ, d(x) = x ⊙ mask.
 */
function doraReference(p: {
  x: number[];
  A: number[];
  B: number[];
  m: number[];
  W: number[];
  b: number[];
  mask: number[];
  n: number[];
  outIn: boolean;
}): number[] {
  const w = (i: number, o: number) => (p.outIn ? p.W[o * IN + i]! : p.W[i * OUT + o]!);
  const y: number[] = [];
  for (let t = 0; t < T; t++) {
    const d = Array.from({ length: IN }, (_, i) => p.x[t * IN + i]! * p.mask[t * IN + i]!);
    const down = Array.from({ length: R }, (_, k) => d.reduce((sum, v, i) => sum + v * p.A[k * IN + i]!, 0));
    for (let o = 0; o < OUT; o++) {
      let base = p.b[o]!;
      let dropped = 0;
      for (let i = 0; i < IN; i++) {
        base += p.x[t * IN + i]! * w(i, o);
        dropped += d[i]! * w(i, o);
      }
      const lora = down.reduce((sum, v, k) => sum + v * p.B[o * R + k]!, 0) * S;
      const f = p.m[o]! / p.n[o]!;
      y.push(base + (f - 1) * dropped + f * lora);
    }
  }
  return y;
}

describe("DoRA's linear forward and backward, against a float64 reference (norm held constant)", () => {
  test.each([
    ["nn.Linear [out, in], bias, dropout", "out_in", true, true],
    ["Conv1D [in, out], bias, dropout", "in_out", true, true],
    ["nn.Linear, no bias, no dropout", "out_in", false, false],
    ["Conv1D, bias, no dropout", "in_out", true, false],
  ] as const)("%s: y, dx, dA, dB and dm within 1e-5 of the reference's central differences", async (_, layout, hasBias, hasDropout) => {
    const rng = new SeededRandom(layout.length + (hasBias ? 2 : 0) + (hasDropout ? 5 : 0));
    const rand = (n: number, scale = 1) => Array.from({ length: n }, () => (rng.next() * 2 - 1) * scale);
    const outIn = layout === "out_in";
    const values = {
      x: rand(T * IN),
      A: rand(R * IN),
      B: rand(OUT * R),
      W: rand(IN * OUT),
      b: hasBias ? rand(OUT) : Array.from({ length: OUT }, () => 0),
      mask: Array.from({ length: T * IN }, () => (hasDropout ? (rng.next() < 0.3 ? 0 : 1 / 0.7) : 1)),
    };
    const combined = Array.from({ length: OUT }, (_, o) =>
      Math.sqrt(
        Array.from({ length: IN }, (_, i) => {
          const delta = S * values.B.slice(o * R, o * R + R).reduce((sum, v, k) => sum + v * values.A[k * IN + i]!, 0);
          return (outIn ? values.W[o * IN + i]! : values.W[i * OUT + o]!) + delta;
        }).reduce((sum, v) => sum + v * v, 0),
      ),
    );
    // m away from the norm (f ≠ 1), as after training.
    const m = combined.map((n) => n * (0.3 + 1.4 * rng.next()));
    const upstream = rand(T * OUT);

    const g = new GraphBuilder();
    g.floatInit("W", Float32Array.from(values.W), outIn ? [OUT, IN] : [IN, OUT]);
    if (hasBias) g.floatInit("b", Float32Array.from(values.b), [OUT]);
    g.floatInit("scaling", Float32Array.of(S), [1]);
    const layer: FrozenLinear = {
      scope: "/layer",
      weight: "W",
      ...(hasBias ? { bias: "b" } : {}),
      layout,
      lora: {
        A: "A",
        B: "B",
        scaling: "scaling",
        magnitude: "m",
        gradA: "dA",
        gradB: "dB",
        gradMagnitude: "dm",
        ...(hasDropout ? { dropoutMask: "mask" } : {}),
      },
    };
    const { y, saved } = linearForward(g, layer, "x");
    g.renameOutput(y, "y");
    g.renameOutput(linearBackward(g, layer, saved, "dy"), "dx");
    const input = [
      floatValueInfo("x", [T, IN]),
      floatValueInfo("A", [R, IN]),
      floatValueInfo("B", [OUT, R]),
      floatValueInfo("m", [OUT]),
      floatValueInfo("dy", [T, OUT]),
      ...(hasDropout ? [floatValueInfo("mask", [T, IN])] : []),
    ];
    const output = [
      floatValueInfo("y", [T, OUT]),
      floatValueInfo("dx", [T, IN]),
      floatValueInfo("dA", [R, IN]),
      floatValueInfo("dB", [OUT, R]),
      floatValueInfo("dm", [OUT]),
    ];
    const graph = { name: "dora", node: g.nodes, initializer: g.initializers, input, output, value_info: [] };
    const model = ModelProtoType.fromObject({ ir_version: 8, opset_import: [{ domain: "", version: 17 }], graph }) as unknown as ModelProto;
    const session = await ort.InferenceSession.create(encodeModel(model));
    const f32 = (v: number[], dims: number[]) => new ort.Tensor("float32", Float32Array.from(v), dims);
    const out = await session.run({
      x: f32(values.x, [T, IN]),
      A: f32(values.A, [R, IN]),
      B: f32(values.B, [OUT, R]),
      m: f32(m, [OUT]),
      dy: f32(upstream, [T, OUT]),
      ...(hasDropout ? { mask: f32(values.mask, [T, IN]) } : {}),
    });
    await session.release();

    const point = { ...values, m, n: combined, outIn };
    const loss = (p: typeof point) => doraReference(p).reduce((sum, v, i) => sum + v * upstream[i]!, 0);
    const central = (key: "x" | "A" | "B" | "m") =>
      point[key].map((v, i) => {
        const h = 1e-6;
        const at = (delta: number) => loss({ ...point, [key]: point[key].map((u, j) => (j === i ? v + delta : u)) });
        return (at(h) - at(-h)) / (2 * h);
      });
    expect(maxAbsDiff(out.y!.data as Float32Array, doraReference(point))).toBeLessThanOrEqual(1e-5);
    for (const [name, key] of [
      ["dx", "x"],
      ["dA", "A"],
      ["dB", "B"],
      ["dm", "m"],
    ] as const) {
      const want = central(key);
      const scale = want.reduce((s, v) => Math.max(s, Math.abs(v)), 0);
      expect(maxAbsDiff(out[name]!.data as Float32Array, want), name).toBeLessThanOrEqual(1e-5 * Math.max(1, scale));
    }
  });
});
