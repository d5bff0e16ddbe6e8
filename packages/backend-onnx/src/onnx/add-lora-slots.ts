import { LowrankError } from "@lowrank/core";
import { floatValueInfo, newNode, type AttributeProto, type ModelProto, type NodeProto } from "./onnx-codec.js";
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
  /**
   * DoRA slots only: inputs fed the per-output factor m/‖W + ΔW‖ ([out]) and the shift
   * (1 − factor)·bias ([out], for a node whose output includes its bias, as Gemm's C does), so the
   * output is factor ⊙ (x·W + delta) + bias. The base and plain LoRA adapters feed ones and zeros.
   */
  dora?: { scaleInput: string; shiftInput: string; bias?: string };
  /**
   * With `rowMasks`: the input fed a [batch, r] mask that multiplies each row's x·Aᵀ — 1 on the
   * rank columns of the row's own adapter, 0 elsewhere — so one run serves rows with different
   * adapters whose factors are fed side by side along r (S-LoRA / Punica's gather, as a mask).
   */
  rowMask?: string;
}

/**
 * Rewrites a graph so that each listed module's output gains x·Aᵀ·(s·Bᵀ), with Aᵀ and s·Bᵀ as graph
 * inputs whose rank dimension is symbolic — any adapter's rank, or a zero rank-1 pair for the base
 * model, can be fed per run. For an embedding (Gather), the branch gathers rows of Aᵀ by the same
 * ids. Modules with `dora` get two more inputs, a per-output scale and shift (see LoraSlot.dora);
 * with `rowMasks` every module gets a per-row rank mask (see LoraSlot.rowMask). The original
 * weights stay as they are.
 * @throws LowrankError CHECKPOINT_INVALID for a module's node without an output (and locateWeights' errors).
 */
export function addLoraSlots(
  model: ModelProto,
  modules: { name: string; inFeatures: number; outFeatures: number; dora?: boolean }[],
  label: string,
  options: { rowMasks?: boolean } = {},
): Map<string, LoraSlot> {
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
    const added: NodeProto[] = [down];
    let rowMask: string | undefined;
    let downOut = `${prefix}/down`;
    if (options.rowMasks) {
      rowMask = `${prefix}.row_mask`;
      graph.input.push(floatValueInfo(rowMask, ["lowrank_rows", rank]));
      added.push(...rowMaskNodes(prefix, downOut, rowMask));
      downOut = `${prefix}/down_masked`;
    }
    const up = newNode({ name: `${prefix}/MatMul_B`, op_type: "MatMul", input: [downOut, inputB], output: [`${prefix}/delta`] });
    added.push(up);
    let dora: LoraSlot["dora"];
    if (module.dora && location.kind === "linear") {
      dora = { scaleInput: `${prefix}.dora_scale`, shiftInput: `${prefix}.dora_shift`, bias: node.op_type === "Gemm" ? node.input[2] : undefined };
      graph.input.push(floatValueInfo(dora.scaleInput, [module.outFeatures]), floatValueInfo(dora.shiftInput, [module.outFeatures]));
      added.push(
        newNode({ name: `${prefix}/Add`, op_type: "Add", input: [baseOutput, `${prefix}/delta`], output: [`${prefix}/sum`] }),
        newNode({ name: `${prefix}/Mul_dora`, op_type: "Mul", input: [`${prefix}/sum`, dora.scaleInput], output: [`${prefix}/scaled`] }),
        newNode({ name: `${prefix}/Add_dora`, op_type: "Add", input: [`${prefix}/scaled`, dora.shiftInput], output: [output] }),
      );
    } else {
      added.push(newNode({ name: `${prefix}/Add`, op_type: "Add", input: [baseOutput, `${prefix}/delta`], output: [output] }));
    }
    graph.node.splice(graph.node.indexOf(node) + 1, 0, ...added);
    slots.set(name, {
      module: name,
      kind: location.kind,
      inputA,
      inputB,
      inFeatures: module.inFeatures,
      outFeatures: module.outFeatures,
      location,
      ...(dora ? { dora } : {}),
      ...(rowMask ? { rowMask } : {}),
    });
  }
  return slots;
}

/**
 * down [rows·…, r] (any rank of leading dimensions, rows first) times mask [rows, r] per row: viewed
 * as [rows, −1, r] against the mask as [rows, 1, r], then back to down's own shape.
 */
function rowMaskNodes(prefix: string, down: string, mask: string): NodeProto[] {
  const n = (op: string, name: string, input: string[], attribute: NodeProto["attribute"] = []) =>
    newNode({ name: `${prefix}/row_mask/${name}`, op_type: op, input, output: [`${prefix}/row_mask/${name}_out`], attribute });
  const out = (name: string) => `${prefix}/row_mask/${name}_out`;
  return [
    n("Shape", "mask_shape", [mask]),
    n("Shape", "down_shape", [down]),
    n("Constant", "minus_one", [], [intsAttribute("value_ints", [-1])]),
    n("Constant", "one", [], [intsAttribute("value_ints", [1])]),
    n("Constant", "zero", [], [intsAttribute("value_ints", [0])]),
    n("Constant", "two", [], [intsAttribute("value_ints", [2])]),
    n("Slice", "rows", [out("mask_shape"), out("zero"), out("one")]),
    n("Slice", "rank", [out("mask_shape"), out("one"), out("two")]),
    n("Concat", "view", [out("rows"), out("minus_one"), out("rank")], [intAttribute("axis", 0)]),
    n("Reshape", "viewed", [down, out("view")]),
    n("Unsqueeze", "mask3", [mask, out("one")]),
    n("Mul", "masked", [out("viewed"), out("mask3")]),
    newNode({ name: `${prefix}/row_mask/back`, op_type: "Reshape", input: [out("masked"), out("down_shape")], output: [`${prefix}/down_masked`] }),
  ];
}

const intsAttribute = (name: string, values: number[]): AttributeProto => ({ name, type: 7, ints: values }) as unknown as AttributeProto;
const intAttribute = (name: string, value: number): AttributeProto => ({ name, type: 2, i: value }) as unknown as AttributeProto;
