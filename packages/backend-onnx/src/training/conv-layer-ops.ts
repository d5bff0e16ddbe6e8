import { LowrankError } from "@lowrank/core";
import { moduleScope } from "../onnx/locate-weights.js";
import { activationForward } from "./activation-ops.js";
import type { EncoderLayers } from "./encoder-layers.js";
import type { ArchitectureContext } from "./training-graph.js";

/** What DeBERTa-v2's ConvLayer reads from config.json and the checkpoint. */
export interface ConvLayerSpec {
  /** "deberta.encoder.conv" or "encoder.conv". */
  module: string;
  kernel: number;
  groups: number;
  act: string;
  hidden: number;
  batch: string;
  seq: string;
  /** The attention mask as a float column [tokens, 1]. */
  maskColumn: string;
}

/**
 * transformers' DeBERTa-v2 ConvLayer after the first layer, forward and backward, on [tokens, hidden]:
 * y = LayerNorm(residual + act(mask ⊙ Conv1d(input over the sequence))) ⊙ mask, the convolution
 * "same"-padded ((kernel − 1)/2 on each side, odd kernels). Backward: the input's gradient is the
 * transposed convolution of the output gradient with the same weight and pads (Conv's adjoint); with
 * the weight trained, its gradient is Σ over batch and positions of dOut ⊗ the input shifted by each
 * tap (one Gemm per tap; conv_groups 1), the bias's Σ dOut.
 * @throws LowrankError CHECKPOINT_INVALID for an even kernel or a trained weight with conv_groups > 1.
 */
export async function convLayer(ctx: ArchitectureContext, layers: EncoderLayers, spec: ConvLayerSpec, input: string, residual: string) {
  const { g } = ctx;
  const { module, kernel, hidden } = spec;
  if (kernel % 2 === 0)
    throw new LowrankError(
      "CHECKPOINT_INVALID",
      `${ctx.label}: config.json \`conv_kernel_size\` ${kernel} is even; transformers' ConvLayer keeps the length only for odd sizes`,
    );
  const s = moduleScope(`${module}.conv`);
  const weight = await ctx.weight(`${module}.conv.weight`);
  const bias = ctx.has(`${module}.conv.bias`) ? await ctx.weight(`${module}.conv.bias`) : undefined;
  if (ctx.trains(weight) && spec.groups !== 1)
    throw new LowrankError(
      "CHECKPOINT_INVALID",
      `${ctx.label}: training ${module}.conv.weight with \`conv_groups\` ${spec.groups} is not supported by the onnx trainer`,
    );
  const pad = (kernel - 1) / 2;
  const attributes = { group: spec.groups, kernel_shape: [kernel], pads: [pad, pad], strides: [1], dilations: [1] };
  const bth = g.one(s, "Concat", [spec.batch, spec.seq, g.constInts([hidden])], { axis: 0 });
  /** [tokens, hidden] → [batch, hidden, seq], and back. */
  const toChannels = (scope: string, x: string) => g.one(scope, "Transpose", [g.one(scope, "Reshape", [x, bth])], { perm: [0, 2, 1] });
  const toTokens = (scope: string, x: string) => g.one(scope, "Reshape", [g.one(scope, "Transpose", [x], { perm: [0, 2, 1] }), g.constInts([-1, hidden])]);
  const channels = toChannels(s, input);
  const conv = g.one(s, "Conv", [channels, weight, ...(bias ? [bias] : [])], attributes);
  const masked = g.one(s, "Mul", [toTokens(s, conv), spec.maskColumn]);
  const activation = activationForward(g, moduleScope(`${module}.conv_act`), spec.act, masked);
  const norm = await layers.layerNorm(`${module}.LayerNorm`, g.one(moduleScope(module), "Add", [residual, activation.y]));
  const y = g.one(moduleScope(module), "Mul", [norm.y, spec.maskColumn]);

  /** Gradients of the input and the residual for dy; the trained weight's and bias's go to ctx.gradient. */
  const backward = async (dy: string): Promise<{ dInput: string; dResidual: string }> => {
    const ds = `/grad${s}`;
    const dSum = await layers.normBack(`${module}.LayerNorm`, norm.saved, g.one(`/grad${moduleScope(module)}`, "Mul", [dy, spec.maskColumn]));
    const dOut = g.one(ds, "Mul", [g.one(ds, "Mul", [dSum, activation.derivative()]), spec.maskColumn]);
    const dConv = toChannels(ds, dOut);
    const dInput = toTokens(ds, g.one(ds, "ConvTranspose", [dConv, weight], attributes));
    if (bias && ctx.trains(bias)) ctx.gradient(bias, g.one(ds, "ReduceSum", [dOut, g.constInts([0])], { keepdims: 0 }));
    if (ctx.trains(weight)) {
      // Tap k reads input position t + k − pad: the input padded by pad zeros each side, sliced at k.
      const padded = g.one(ds, "Pad", [channels, g.constInts([0, 0, pad, 0, 0, pad])]);
      const taps = Array.from({ length: kernel }, (_, k) => {
        const shifted = g.one(ds, "Slice", [padded, g.constInts([k]), g.one(ds, "Add", [spec.seq, g.constInts([k])]), g.constInts([2])]);
        // dW[:, :, k] = dOutᵀ · shifted, both as [tokens, hidden].
        return g.one(ds, "Unsqueeze", [g.one(ds, "Gemm", [dOut, toTokens(ds, shifted)], { transA: 1 }), g.constInts([2])]);
      });
      ctx.gradient(weight, g.one(ds, "Concat", taps, { axis: 2 }));
    }
    return { dInput, dResidual: dSum };
  };
  return { y, backward };
}
