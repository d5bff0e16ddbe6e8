import { LowrankError, type WeightLayout } from "@lowrank/core";
import { newNode, newTensor, toNumber, type GraphProto, type NodeProto, type TensorProto } from "./onnx-codec.js";
import { tensorDims } from "./tensor-data.js";

/** Where an adapted module's weight lives in an ONNX graph. */
export interface WeightLocation {
  module: string;
  /** The MatMul / Gemm / Gather node that uses the weight. */
  node: NodeProto;
  /** The initializer holding the weight (after any copy-on-share). */
  initializer: TensorProto;
  /** Stored orientation in LoRA's terms: `in_out` ([in, out], or [vocab, dim]) or `out_in`. */
  layout: WeightLayout;
  /** The node's data input: x for MatMul/Gemm, the ids for Gather. */
  dataInput: string;
  kind: "linear" | "embedding";
  /** How it was found. */
  via: "name" | "graph";
}

/**
 * The initializer holding a checkpoint tensor `key` (a whole tensor an adapter replaces): the one of
 * that name, else the only one named `<prefix>.<key>` — an export of a wrapper module keeps the
 * wrapper's attribute in front (`m.model.embed_tokens.weight`). Undefined when neither exists.
 */
export function initializerForKey(graph: GraphProto, key: string): TensorProto | undefined {
  const exact = graph.initializer.find((t) => t.name === key);
  if (exact) return exact;
  const prefixed = graph.initializer.filter((t) => t.name.endsWith(`.${key}`));
  return prefixed.length === 1 ? prefixed[0] : undefined;
}

/**
 * torch.onnx's scope for a module: dots become slashes, but a layer index stays joined to its
 * container ("model.layers.0.self_attn.q_proj" → "/model/layers.0/self_attn/q_proj").
 */
export function moduleScope(module: string): string {
  const parts: string[] = [];
  for (const token of module.split(".")) {
    if (/^\d+$/.test(token) && parts.length > 0) parts[parts.length - 1] += `.${token}`;
    else parts.push(token);
  }
  return `/${parts.join("/")}`;
}

function attributeInt(node: NodeProto, name: string): number | undefined {
  const a = node.attribute.find((x) => x.name === name);
  return a?.i === undefined ? undefined : toNumber(a.i);
}

/** Index over a graph: initializers by name, producers and consumers of each value. */
export class GraphIndex {
  readonly initializers = new Map<string, TensorProto>();
  readonly producer = new Map<string, NodeProto>();
  readonly consumers = new Map<string, NodeProto[]>();

  constructor(readonly graph: GraphProto) {
    for (const t of graph.initializer) this.initializers.set(t.name, t);
    for (const node of graph.node) {
      for (const out of node.output) this.producer.set(out, node);
      for (const input of node.input) this.consumers.set(input, [...(this.consumers.get(input) ?? []), node]);
    }
  }

  uses(name: string): number {
    return (this.consumers.get(name) ?? []).length + (this.graph.output.some((o) => o.name === name) ? 1 : 0);
  }
}

/** The weight operand of a MatMul/Gemm/Gather, traced to an initializer through at most one Transpose. */
function weightOperand(
  index: GraphIndex,
  node: NodeProto,
): { initializer: TensorProto; transposed?: NodeProto; layout: WeightLayout; kind: "linear" | "embedding"; dataInput: string } | undefined {
  if (node.op_type === "Gather") {
    const [weight, ids] = node.input;
    // A Gather without both inputs is not a weight lookup lowrank can adapt.
    if (weight === undefined || ids === undefined) return undefined;
    const init = index.initializers.get(weight);
    return init ? { initializer: init, layout: "in_out", kind: "embedding", dataInput: ids } : undefined;
  }
  if (node.op_type !== "MatMul" && node.op_type !== "Gemm") return undefined;
  const [dataInput, name] = node.input;
  // A MatMul/Gemm without both operands has no weight to adapt.
  if (dataInput === undefined || name === undefined) return undefined;
  let layout: WeightLayout = node.op_type === "Gemm" && attributeInt(node, "transB") === 1 ? "out_in" : "in_out";
  if (node.op_type === "Gemm" && attributeInt(node, "transA") === 1) return undefined;
  const direct = index.initializers.get(name);
  if (direct) return { initializer: direct, layout, kind: "linear", dataInput };
  const producer = index.producer.get(name);
  if (producer?.op_type !== "Transpose") return undefined;
  const perm = producer.attribute.find((a) => a.name === "perm")?.ints?.map(toNumber);
  if (perm && !(perm.length === 2 && perm[0] === 1 && perm[1] === 0)) return undefined;
  const source = producer.input[0];
  const init = source === undefined ? undefined : index.initializers.get(source);
  if (!init) return undefined;
  layout = layout === "in_out" ? "out_in" : "in_out";
  return { initializer: init, transposed: producer, layout, kind: "linear", dataInput };
}

/**
 * Finds each module's weight: first through the graph (the MatMul/Gemm/Gather in the module's
 * scope, as constant-folded exports need), then by the PyTorch name "<module>.weight". The layout
 * comes from the node (MatMul's B, Gemm's transB, a Transpose in front), and is checked against the
 * expected features. A weight that other nodes share is copied for this module first, so the others
 * keep the original.
 * @throws LowrankError ADAPTER_INVALID naming a module that cannot be mapped.
 */
export function locateWeights(
  graph: GraphProto,
  modules: { name: string; inFeatures: number; outFeatures: number }[],
  label: string,
): Map<string, WeightLocation> {
  const found = new Map<string, WeightLocation>();
  for (const module of modules) {
    const index = new GraphIndex(graph);
    const scope = `${moduleScope(module.name)}/`;
    let via: "graph" | "name" = "graph";
    // Exports of a wrapper module put one more scope in front ("/m/model/layers.0/…"): accepted too.
    const inScope = (n: NodeProto, wrapped: boolean): boolean => {
      const at = wrapped ? n.name.lastIndexOf(scope) : n.name.startsWith(scope) ? 0 : -1;
      return at >= 0 && !n.name.slice(at + scope.length).includes("/") && ["MatMul", "Gemm", "Gather"].includes(n.op_type);
    };
    let candidates = graph.node.filter((n) => inScope(n, false) && weightOperand(index, n) !== undefined);
    if (candidates.length === 0) candidates = graph.node.filter((n) => inScope(n, true) && weightOperand(index, n) !== undefined);
    if (candidates.length !== 1) {
      via = "name";
      const consumers = index.consumers.get(`${module.name}.weight`) ?? [];
      const direct = consumers.filter((n) => ["MatMul", "Gemm", "Gather"].includes(n.op_type));
      const throughTranspose = consumers
        .filter((n) => n.op_type === "Transpose")
        .flatMap((t) => {
          const transposed = t.output[0];
          return transposed === undefined
            ? []
            : (index.consumers.get(transposed) ?? []).filter((n) => ["MatMul", "Gemm"].includes(n.op_type) && n.input[1] === transposed);
        });
      candidates = [...direct, ...throughTranspose].filter((n) => weightOperand(index, n) !== undefined);
    }
    if (candidates.length !== 1) {
      const matches =
        candidates.length === 0 ? `no MatMul/Gemm/Gather in scope ${scope} and no initializer "${module.name}.weight"` : `${candidates.length} candidate nodes`;
      throw new LowrankError("ADAPTER_INVALID", `${label}: cannot find the weight of module "${module.name}" (${matches})`);
    }
    const node = candidates[0]!;
    const operand = weightOperand(index, node)!;
    const dims = tensorDims(operand.initializer);
    const expected = operand.layout === "in_out" ? [module.inFeatures, module.outFeatures] : [module.outFeatures, module.inFeatures];
    if (dims.join(",") !== expected.join(",")) {
      throw new LowrankError(
        "SHAPE_MISMATCH",
        `${label}: module "${module.name}" maps to initializer "${operand.initializer.name}" of shape [${dims}], but the adapter needs [${expected}] ` +
          `(${operand.layout === "in_out" ? "input by output" : "output by input"}, as node "${node.name}" uses it)`,
      );
    }
    let initializer = operand.initializer;
    // Copy a weight that anything else uses (deduplicated initializers, tied heads): only this module changes.
    const sharedInit = index.uses(initializer.name) > 1;
    // The Transpose was found as the producer of the weight operand, so it has an output.
    const sharedTranspose = operand.transposed !== undefined && index.uses(operand.transposed.output[0]!) > 1;
    if (sharedInit || sharedTranspose) {
      const copyName = `${initializer.name}.lowrank.${module.name}`;
      initializer = newTensor({
        name: copyName,
        dims: [...initializer.dims],
        data_type: initializer.data_type,
        raw_data: initializer.raw_data,
        float_data: initializer.float_data,
        data_location: initializer.data_location,
        external_data: initializer.external_data,
      });
      graph.initializer.push(initializer);
      if (operand.transposed) {
        const transpose = newNode({
          name: `${operand.transposed.name}.lowrank.${module.name}`,
          op_type: "Transpose",
          input: [copyName],
          output: [`${operand.transposed.output[0]}.lowrank.${module.name}`],
          attribute: operand.transposed.attribute,
        });
        graph.node.splice(graph.node.indexOf(node), 0, transpose);
        node.input[1] = transpose.output[0]!;
      } else if (operand.kind === "embedding") {
        node.input[0] = copyName;
      } else {
        node.input[1] = copyName;
      }
    }
    found.set(module.name, { module: module.name, node, initializer, layout: operand.layout, dataInput: operand.dataInput, kind: operand.kind, via });
  }
  return found;
}
