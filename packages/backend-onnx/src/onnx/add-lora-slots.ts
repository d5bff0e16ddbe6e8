import { LowrankError } from "@lowrank/core";
import { floatValueInfo, newNode, type ModelProto } from "./onnx-codec.js";
import { locateWeights, type WeightLocation } from "./locate-weights.js";

/** A runtime LoRA branch in the graph: two graph inputs that the session feeds per run. */
export interface LoraSlot {
  module: string;
  kind: "linear" | "embedding";
  /** Input fed Aᵀ: [in, r] (linear) or [vocab, r] (embedding). */
  inputA: string;
  /** Input fed scaling·Bᵀ: [r, out]. */
  inputB: string;
  inFeatures: number;
  outFeatures: number;
  location: WeightLocation;
}

/**
 * Rewrites a graph so that each listed module's output gains x·Aᵀ·(s·Bᵀ), with Aᵀ and s·Bᵀ as graph
 * inputs whose rank dimension is symbolic — any adapter's rank, or a zero rank-1 pair for the base
 * model, can be fed per run. For an embedding (Gather), the branch gathers rows of Aᵀ by the same
 * ids. The original weights stay as they are.
 * @throws LowrankError CHECKPOINT_INVALID for a module's node without an output (and locateWeights' errors).
 */
export function addLoraSlots(model: ModelProto, modules: { name: string; inFeatures: number; outFeatures: number }[], label: string): Map<string, LoraSlot> {
  const graph = model.graph;
  const locations = locateWeights(graph, modules, label);
  const slots = new Map<string, LoraSlot>();
  let index = 0;
  for (const [name, location] of locations) {
    const module = modules.find((m) => m.name === name)!;
    const prefix = `lowrank.lora.${name}`;
    const rank = `lowrank_rank_${index++}`;
    const inputA = `${prefix}.A`;
    const inputB = `${prefix}.B`;
    const rows = location.kind === "embedding" ? module.inFeatures : module.inFeatures;
    graph.input.push(floatValueInfo(inputA, [rows, rank]), floatValueInfo(inputB, [rank, module.outFeatures]));
    const node = location.node;
    const output = node.output[0];
    if (output === undefined) throw new LowrankError("CHECKPOINT_INVALID", `${label}: node "${node.name}" (the weight of module "${name}") has no output`);
    const baseOutput = `${output}.lowrank_base`;
    node.output[0] = baseOutput;
    const down =
      location.kind === "embedding"
        ? newNode({ name: `${prefix}/Gather`, op_type: "Gather", input: [inputA, location.dataInput], output: [`${prefix}/down`] })
        : newNode({ name: `${prefix}/MatMul_A`, op_type: "MatMul", input: [location.dataInput, inputA], output: [`${prefix}/down`] });
    const up = newNode({ name: `${prefix}/MatMul_B`, op_type: "MatMul", input: [`${prefix}/down`, inputB], output: [`${prefix}/delta`] });
    const add = newNode({ name: `${prefix}/Add`, op_type: "Add", input: [baseOutput, `${prefix}/delta`], output: [output] });
    graph.node.splice(graph.node.indexOf(node) + 1, 0, down, up, add);
    slots.set(name, { module: name, kind: location.kind, inputA, inputB, inFeatures: module.inFeatures, outFeatures: module.outFeatures, location });
  }
  return slots;
}
