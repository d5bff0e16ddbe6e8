import type { GraphBuilder } from "../export/graph-builder.js";
import { moduleScope } from "../onnx/locate-weights.js";
import { linearBackward, linearParameterGradients, type FrozenLinear, type LinearSaved, type LoraInputs } from "./lora-linear-ops.js";
import { layerNormBackward, layerNormForward, layerNormParameterGradients, type NormSaved } from "./norm-ops.js";
import type { ArchitectureContext } from "./training-graph.js";

/** A linear of the forward pass with what its backward pass reads. */
export type SavedLinear = { layer: FrozenLinear; saved: LinearSaved };

/** Batch and sequence length as 1-D int64 tensors of one element. */
type Dims = { batch: string; seq: string };

/** x [batch·seq, width] → the first token's rows [batch, width] (transformers' hidden_states[:, 0]). */
export function firstRows(g: GraphBuilder, dims: Dims, x: string, width: number): string {
  const s = "/first_token";
  const rows = g.one(s, "Reshape", [x, g.one(s, "Concat", [dims.batch, dims.seq, g.constInts([width])], { axis: 0 })]);
  return g.one(s, "Reshape", [g.one(s, "Slice", [rows, g.constInts([0]), g.constInts([1]), g.constInts([1])]), g.constInts([-1, width])]);
}

/** The backward of firstRows: dy [batch, width] in the first row of each sequence, zeros elsewhere, as [batch·seq, width]. */
export function firstRowsBackward(g: GraphBuilder, dims: Pick<Dims, "seq">, dy: string, width: number): string {
  const s = "/grad/first_token";
  const pads = g.one(s, "Concat", [g.constInts([0, 0, 0, 0]), g.one(s, "Sub", [dims.seq, g.constInts([1])]), g.constInts([0])], { axis: 0 });
  const padded = g.one(s, "Pad", [g.one(s, "Unsqueeze", [dy, g.constInts([1])]), pads]);
  return g.one(s, "Reshape", [padded, g.constInts([-1, width])]);
}

/** An encoder training graph's linears and LayerNorms, forward and backward (encoderLayers). */
export interface EncoderLayers {
  /**
   * The frozen linear `module` with its LoRA inputs. `firstTokenOnly` (a head reading one row per
   * sequence): its dropout mask is the first token's rows of the [tokens, in] mask fed for it.
   */
  linear(module: string, options?: { firstTokenOnly?: boolean }): Promise<FrozenLinear>;
  layerNorm(module: string, x: string): Promise<{ y: string; saved: NormSaved }>;
  /** dx of a linear for dy; its trained weight and bias (`ctx.trains`) get their gradients. */
  linearBack(l: SavedLinear, dy: string): string;
  /** dx of a LayerNorm for dy; its trained weight and bias get their gradients. */
  normBack(module: string, saved: NormSaved, dy: string): Promise<string>;
}

/** The linears and LayerNorms (epsilon `eps`) of an encoder's training graph over `ctx`, LoRA from `lora`. */
export function encoderLayers(ctx: ArchitectureContext, p: { lora: ReadonlyMap<string, LoraInputs>; dims: Dims; eps: number }): EncoderLayers {
  const { g } = ctx;
  const normWeights = async (module: string) => ({ weight: await ctx.weight(`${module}.weight`), bias: await ctx.weight(`${module}.bias`) });
  return {
    async linear(module, options = {}) {
      let adapter = p.lora.get(module);
      if (adapter?.dropoutMask && options.firstTokenOnly) {
        const width = ctx.slots.find((slot) => slot.module === module)!.inFeatures;
        adapter = { ...adapter, dropoutMask: firstRows(g, p.dims, adapter.dropoutMask, width) };
      }
      return {
        scope: moduleScope(module),
        weight: await ctx.weight(`${module}.weight`),
        bias: ctx.has(`${module}.bias`) ? await ctx.weight(`${module}.bias`) : undefined,
        layout: "out_in",
        lora: adapter,
      };
    },
    async layerNorm(module, x) {
      const w = await normWeights(module);
      return layerNormForward(g, moduleScope(module), x, w.weight, w.bias, p.eps);
    },
    linearBack(l, dy) {
      if (ctx.trains(l.layer.weight) || (l.layer.bias && ctx.trains(l.layer.bias))) {
        const grads = linearParameterGradients(g, l.layer, l.saved, dy);
        if (ctx.trains(l.layer.weight)) ctx.gradient(l.layer.weight, grads.weight);
        if (l.layer.bias && grads.bias && ctx.trains(l.layer.bias)) ctx.gradient(l.layer.bias, grads.bias);
      }
      return linearBackward(g, l.layer, l.saved, dy);
    },
    async normBack(module, saved, dy) {
      const { weight, bias } = await normWeights(module);
      if (ctx.trains(weight) || ctx.trains(bias)) {
        const grads = layerNormParameterGradients(g, moduleScope(module), saved, dy);
        if (ctx.trains(weight)) ctx.gradient(weight, grads.weight);
        if (ctx.trains(bias)) ctx.gradient(bias, grads.bias);
      }
      return layerNormBackward(g, moduleScope(module), saved, weight, dy);
    },
  };
}
