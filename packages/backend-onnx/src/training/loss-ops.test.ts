import protobuf from "protobufjs";
import * as ort from "onnxruntime-node";
import { describe, expect, test } from "vitest";
import { SeededRandom } from "@lowrank/core/internal";
import { maxAbsDiff } from "@lowrank/core/testing";
import { GraphBuilder } from "../export/graph-builder.js";
import { encodeModel, floatValueInfo, ONNX_INT64, type ModelProto } from "../onnx/onnx-codec.js";
import { ONNX_PROTO } from "../onnx/onnx-proto.js";
import { causalLmLoss, LOSS_INPUTS, lossChunks } from "./loss-ops.js";

const ModelProtoType = protobuf.parse(ONNX_PROTO, { keepCase: true }).root.lookupType("onnx.ModelProto");

const [BATCH, SEQ, HIDDEN, VOCAB] = [2, 7, 5, 11];
const TOKENS = BATCH * SEQ;

/** The masked mean cross-entropy of h·Eᵀ (soft-capped when `cap`), in float64. */
function referenceLoss(h: number[], e: number[], targets: number[], mask: number[], cap?: number): number {
  const count = Math.max(
    1,
    mask.reduce((a, b) => a + b, 0),
  );
  let total = 0;
  for (let t = 0; t < TOKENS; t++) {
    const logits = Array.from({ length: VOCAB }, (_, v) => {
      const z = Array.from({ length: HIDDEN }, (_, k) => h[t * HIDDEN + k]! * e[v * HIDDEN + k]!).reduce((a, b) => a + b, 0);
      return cap === undefined ? z : Math.tanh(z / cap) * cap;
    });
    const max = Math.max(...logits);
    const lse = max + Math.log(logits.reduce((s, z) => s + Math.exp(z - max), 0));
    total += mask[t]! * (lse - logits[targets[t]!]!);
  }
  return total / count;
}

/** Runs the loss graph `g` built: `feeds` as its inputs (targets int64, the rest float32), the named outputs read back. */
async function runGraph(g: GraphBuilder, feeds: Record<string, { data: number[]; dims: number[] }>, outputs: Record<string, number[]>) {
  const isInt64 = (name: string) => name === LOSS_INPUTS.targets;
  const graph = {
    name: "loss",
    node: g.nodes,
    initializer: g.initializers,
    input: Object.entries(feeds).map(([name, f]) => floatValueInfo(name, f.dims, isInt64(name) ? ONNX_INT64 : undefined)),
    output: Object.entries(outputs).map(([name, dims]) => floatValueInfo(name, dims)),
    value_info: [],
  };
  const model = ModelProtoType.fromObject({ ir_version: 8, opset_import: [{ domain: "", version: 17 }], graph }) as unknown as ModelProto;
  const session = await ort.InferenceSession.create(encodeModel(model));
  try {
    const tensor = (name: string, f: { data: number[]; dims: number[] }) =>
      isInt64(name) ? new ort.Tensor("int64", BigInt64Array.from(f.data.map(BigInt)), f.dims) : new ort.Tensor("float32", Float32Array.from(f.data), f.dims);
    const out = await session.run(Object.fromEntries(Object.entries(feeds).map(([name, f]) => [name, tensor(name, f)])));
    return Object.fromEntries(Object.keys(outputs).map((name) => [name, out[name]!.data as Float32Array]));
  } finally {
    await session.release();
  }
}

async function runLoss(chunks: number, cap: number | undefined, values: { h: number[]; e: number[]; targets: number[]; mask: number[] }) {
  const g = new GraphBuilder();
  const loss = causalLmLoss(g, "h", "E", { chunks, ...(cap === undefined ? {} : { softcap: cap }) });
  g.renameOutput(loss.dHidden(), "dh");
  g.renameOutput(loss.dHead(), "dE");
  const out = await runGraph(
    g,
    {
      h: { data: values.h, dims: [TOKENS, HIDDEN] },
      E: { data: values.e, dims: [VOCAB, HIDDEN] },
      [LOSS_INPUTS.targets]: { data: values.targets, dims: [BATCH, SEQ] },
      [LOSS_INPUTS.targetMask]: { data: values.mask, dims: [BATCH, SEQ] },
    },
    { loss: [], tokens: [], dh: [TOKENS, HIDDEN], dE: [VOCAB, HIDDEN] },
  );
  return { loss: out.loss![0]!, tokens: out.tokens![0]!, dh: out.dh!, dE: out.dE! };
}

describe("causalLmLoss: the head fused with the loss, in row chunks", () => {
  test("one chunk for small vocabularies, eight from 16k up", () => {
    expect(lossChunks(4096)).toBe(1);
    expect(lossChunks(50257)).toBe(8);
  });

  test.each([
    [1, undefined],
    [3, undefined],
    [4, undefined],
    // More chunks than rows: the last slices are empty.
    [20, undefined],
    [1, 2.5],
    [3, 2.5],
  ])("%i chunk(s), soft cap %s: loss and the gradients of h and E equal a float64 reference's central differences", async (chunks, cap) => {
    const rng = new SeededRandom(chunks * 31 + (cap ? 7 : 0));
    const values = {
      h: Array.from({ length: TOKENS * HIDDEN }, () => rng.normal()),
      e: Array.from({ length: VOCAB * HIDDEN }, () => rng.normal() * 0.7),
      targets: Array.from({ length: TOKENS }, () => Math.floor(rng.next() * VOCAB)),
      // Some positions ignored (padding, prompts).
      mask: Array.from({ length: TOKENS }, (_, t): number => (t % 5 === 3 ? 0 : 1)),
    };
    const out = await runLoss(chunks, cap, values);
    expect(out.tokens).toBe(values.mask.reduce((a, b) => a + b, 0));
    expect(Math.abs(out.loss - referenceLoss(values.h, values.e, values.targets, values.mask, cap))).toBeLessThan(1e-5);
    const central = (key: "h" | "e") =>
      values[key].map((v, i) => {
        const at = (delta: number) => {
          const moved = { ...values, [key]: values[key].map((u, j) => (j === i ? v + delta : u)) };
          return referenceLoss(moved.h, moved.e, moved.targets, moved.mask, cap);
        };
        return (at(1e-6) - at(-1e-6)) / 2e-6;
      });
    expect(maxAbsDiff(out.dh, central("h"))).toBeLessThan(1e-5);
    expect(maxAbsDiff(out.dE, central("e"))).toBeLessThan(1e-5);
  });
});

const RANK = 3;

/** Loss of logits h·Eᵀ + s·((h ⊙ m)·Aᵀ)·Bᵀ (LoRA on the head with a dropout mask m), soft-capped when `cap`, in float64. */
function referenceLoraLoss(v: { h: number[]; e: number[]; a: number[]; b: number[]; m: number[]; targets: number[]; mask: number[] }, s: number, cap?: number) {
  const count = Math.max(
    1,
    v.mask.reduce((x, y) => x + y, 0),
  );
  let total = 0;
  for (let t = 0; t < TOKENS; t++) {
    const down = Array.from({ length: RANK }, (_, j) =>
      Array.from({ length: HIDDEN }, (_, k) => v.h[t * HIDDEN + k]! * v.m[t * HIDDEN + k]! * v.a[j * HIDDEN + k]!).reduce((x, y) => x + y, 0),
    );
    const logits = Array.from({ length: VOCAB }, (_, w) => {
      const base = Array.from({ length: HIDDEN }, (_, k) => v.h[t * HIDDEN + k]! * v.e[w * HIDDEN + k]!).reduce((x, y) => x + y, 0);
      const z = base + s * down.reduce((acc, d, j) => acc + d * v.b[w * RANK + j]!, 0);
      return cap === undefined ? z : Math.tanh(z / cap) * cap;
    });
    const max = Math.max(...logits);
    const lse = max + Math.log(logits.reduce((acc, z) => acc + Math.exp(z - max), 0));
    total += v.mask[t]! * (lse - logits[v.targets[t]!]!);
  }
  return total / count;
}

describe("causalLmLoss with LoRA on the head (PEFT's LoRA on lm_head)", () => {
  test.each([
    [1, undefined],
    [4, undefined],
    [3, 2.5],
  ])(
    "%i chunk(s), soft cap %s, a dropout mask: the loss and the gradients of h, A and B equal a float64 reference's central differences",
    async (chunks, cap) => {
      const rng = new SeededRandom(chunks * 17 + (cap ? 5 : 0));
      const s = 1.7;
      const values = {
        h: Array.from({ length: TOKENS * HIDDEN }, () => rng.normal()),
        e: Array.from({ length: VOCAB * HIDDEN }, () => rng.normal() * 0.7),
        a: Array.from({ length: RANK * HIDDEN }, () => rng.normal() * 0.5),
        b: Array.from({ length: VOCAB * RANK }, () => rng.normal() * 0.5),
        m: Array.from({ length: TOKENS * HIDDEN }, () => (rng.next() < 0.2 ? 0 : 1.25)),
        targets: Array.from({ length: TOKENS }, () => Math.floor(rng.next() * VOCAB)),
        mask: Array.from({ length: TOKENS }, (_, t): number => (t % 5 === 3 ? 0 : 1)),
      };
      const g = new GraphBuilder();
      const lora = { A: "A", B: "B", scaling: "s", dropoutMask: "m", gradA: "dA", gradB: "dB" };
      const loss = causalLmLoss(g, "h", "E", { chunks, lora, ...(cap === undefined ? {} : { softcap: cap }) });
      g.renameOutput(loss.dHidden(), "dh");
      const out = await runGraph(
        g,
        {
          h: { data: values.h, dims: [TOKENS, HIDDEN] },
          E: { data: values.e, dims: [VOCAB, HIDDEN] },
          A: { data: values.a, dims: [RANK, HIDDEN] },
          B: { data: values.b, dims: [VOCAB, RANK] },
          s: { data: [s], dims: [] },
          m: { data: values.m, dims: [TOKENS, HIDDEN] },
          [LOSS_INPUTS.targets]: { data: values.targets, dims: [BATCH, SEQ] },
          [LOSS_INPUTS.targetMask]: { data: values.mask, dims: [BATCH, SEQ] },
        },
        { loss: [], dh: [TOKENS, HIDDEN], dA: [RANK, HIDDEN], dB: [VOCAB, RANK] },
      );
      expect(Math.abs(out.loss![0]! - referenceLoraLoss(values, s, cap))).toBeLessThan(1e-5);
      const central = (key: "h" | "a" | "b") =>
        values[key].map((v, i) => {
          const at = (delta: number) => referenceLoraLoss({ ...values, [key]: values[key].map((u, j) => (j === i ? v + delta : u)) }, s, cap);
          return (at(1e-6) - at(-1e-6)) / 2e-6;
        });
      expect(maxAbsDiff(out.dh!, central("h"))).toBeLessThan(1e-5);
      expect(maxAbsDiff(out.dA!, central("a"))).toBeLessThan(1e-5);
      expect(maxAbsDiff(out.dB!, central("b"))).toBeLessThan(1e-5);
    },
  );
});
