import { newNode, newTensor, ONNX_FLOAT, ONNX_INT64, type AttributeProto, type NodeProto, type TensorProto } from "../onnx/onnx-codec.js";

type Attribute = number | number[] | string;

/** AttributeProto.AttributeType values used here. */
const FLOAT = 1,
  INT = 2,
  STRING = 3,
  INTS = 7;

function attribute(name: string, value: Attribute): AttributeProto {
  if (typeof value === "string") return { name, type: STRING, s: new TextEncoder().encode(value) } as AttributeProto;
  if (Array.isArray(value)) return { name, type: INTS, ints: value } as unknown as AttributeProto;
  return Number.isInteger(value) && !(name === "epsilon" || name === "alpha")
    ? ({ name, type: INT, i: value } as unknown as AttributeProto)
    : ({ name, type: FLOAT, f: value } as AttributeProto);
}

/**
 * Builds ONNX graph nodes the way torch.onnx names them: each node in its module's scope
 * ("/transformer/h.0/attn/c_attn/MatMul"), outputs "<node>_output_0", a counter per op type in a
 * scope. Initializers keep the given (PyTorch) names.
 */
export class GraphBuilder {
  readonly nodes: NodeProto[] = [];
  readonly initializers: TensorProto[] = [];
  private readonly counters = new Map<string, number>();
  private readonly constants = new Map<string, string>();

  /** Adds a node in `scope`; returns its output names. */
  op(scope: string, opType: string, inputs: string[], attributes: Record<string, Attribute> = {}, outputs = 1): string[] {
    const key = `${scope}/${opType}`;
    const n = this.counters.get(key) ?? 0;
    this.counters.set(key, n + 1);
    const name = n === 0 ? key : `${key}_${n}`;
    const outs = Array.from({ length: outputs }, (_, i) => `${name}_output_${i}`);
    const attrs = Object.entries(attributes).map(([k, v]) => attribute(k, v));
    this.nodes.push(newNode({ name, op_type: opType, input: inputs, output: outs, attribute: attrs }));
    return outs;
  }

  /** A single-output node. */
  one(scope: string, opType: string, inputs: string[], attributes: Record<string, Attribute> = {}): string {
    return this.op(scope, opType, inputs, attributes)[0]!;
  }

  floatInit(name: string, values: Float32Array, dims: number[]): string {
    this.initializers.push(newTensor({ name, dims, data_type: ONNX_FLOAT, raw_data: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) }));
    return name;
  }

  /** An int64 constant initializer (shapes, axes, split sizes). */
  ints(name: string, values: number[]): string {
    const data = new BigInt64Array(values.map((v) => BigInt(v)));
    this.initializers.push(newTensor({ name, dims: [values.length], data_type: ONNX_INT64, raw_data: new Uint8Array(data.buffer) }));
    return name;
  }

  scalar(name: string, value: number): string {
    this.initializers.push(newTensor({ name, dims: [], data_type: ONNX_FLOAT, raw_data: new Uint8Array(new Float32Array([value]).buffer) }));
    return name;
  }

  /** A float32 scalar constant, one initializer per value however often it is used. */
  constFloat(value: number): string {
    const key = `f:${Object.is(value, -0) ? "-0" : String(value)}`;
    let name = this.constants.get(key);
    if (!name) {
      name = this.scalar(`lowrank::const_${this.constants.size}`, value);
      this.constants.set(key, name);
    }
    return name;
  }

  /** A 1-D int64 constant (shapes, axes, indexes), one initializer per value list. */
  constInts(values: number[]): string {
    const key = `i:${values.join(",")}`;
    let name = this.constants.get(key);
    if (!name) {
      name = this.ints(`lowrank::const_${this.constants.size}`, values);
      this.constants.set(key, name);
    }
    return name;
  }

  /** Gives the tensor `from` a new name (a graph output's), in the node that produces it. */
  renameOutput(from: string, to: string): string {
    for (let i = this.nodes.length - 1; i >= 0; i--) {
      const node = this.nodes[i]!;
      const index = node.output.indexOf(from);
      if (index >= 0) {
        node.output[index] = to;
        return to;
      }
    }
    throw new Error(`GraphBuilder: no node produces ${from}`);
  }
}
