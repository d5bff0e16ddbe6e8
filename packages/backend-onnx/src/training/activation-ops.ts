import type { GraphBuilder } from "../export/graph-builder.js";

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const GELU_C = 0.044715;

/** An activation's output and the tensor its backward pass multiplies the output gradient by. */
export interface ActivationResult {
  y: string;
  /** f′(x), built lazily (only the backward pass uses it). */
  derivative: () => string;
}

/** The transformers activations the ONNX trainer supports, by config name. */
export const TRAINABLE_ACTIVATIONS = ["gelu_new", "gelu_pytorch_tanh", "gelu_fast", "gelu", "silu", "swish", "relu", "tanh"] as const;

/**
 * An activation and its derivative as plain ONNX ops:
 * - gelu_new / gelu_pytorch_tanh / gelu_fast: y = ½x(1 + t), t = tanh(√(2/π)(x + 0.044715x³));
 *   y′ = (1 + t)·(½ + ½x(1 − t)·√(2/π)(1 + 3·0.044715x²));
 * - gelu (exact): y = ½x(1 + erf(x/√2)); y′ = ½(1 + erf(x/√2)) + x·e^(−x²/2)/√(2π);
 * - silu / swish: y = x·σ(x); y′ = σ(x)(1 + x(1 − σ(x)));
 * - relu: y′ = 1 where x > 0, else 0; tanh: y′ = 1 − y².
 */
export function activationForward(g: GraphBuilder, scope: string, name: string, x: string): ActivationResult {
  const c = (v: number) => g.constFloat(v);
  const ds = `/grad${scope}`;
  if (name === "gelu") {
    const onePlusErf = g.one(scope, "Add", [g.one(scope, "Erf", [g.one(scope, "Mul", [x, c(Math.SQRT1_2)])]), c(1)]);
    const y = g.one(scope, "Mul", [g.one(scope, "Mul", [x, c(0.5)]), onePlusErf]);
    return {
      y,
      derivative: () => {
        const gauss = g.one(ds, "Exp", [g.one(ds, "Mul", [g.one(ds, "Mul", [x, x]), c(-0.5)])]);
        return g.one(ds, "Add", [g.one(ds, "Mul", [onePlusErf, c(0.5)]), g.one(ds, "Mul", [g.one(ds, "Mul", [x, gauss]), c(1 / Math.sqrt(2 * Math.PI))])]);
      },
    };
  }
  if (name === "relu") {
    const y = g.one(scope, "Relu", [x]);
    return { y, derivative: () => g.one(ds, "Cast", [g.one(ds, "Greater", [x, c(0)])], { to: 1 }) };
  }
  if (name === "tanh") {
    const y = g.one(scope, "Tanh", [x]);
    return { y, derivative: () => g.one(ds, "Sub", [c(1), g.one(ds, "Mul", [y, y])]) };
  }
  if (name === "silu" || name === "swish") {
    const sigmoid = g.one(scope, "Sigmoid", [x]);
    return {
      y: g.one(scope, "Mul", [x, sigmoid]),
      derivative: () => g.one(ds, "Mul", [sigmoid, g.one(ds, "Add", [g.one(ds, "Mul", [x, g.one(ds, "Sub", [c(1), sigmoid])]), c(1)])]),
    };
  }
  // tanh approximation, written as transformers' NewGELUActivation computes it.
  const inner = g.one(scope, "Mul", [g.one(scope, "Add", [x, g.one(scope, "Mul", [g.one(scope, "Pow", [x, c(3)]), c(GELU_C)])]), c(SQRT_2_OVER_PI)]);
  const t = g.one(scope, "Tanh", [inner]);
  const onePlusT = g.one(scope, "Add", [t, c(1)]);
  const half = g.one(scope, "Mul", [x, c(0.5)]);
  return {
    y: g.one(scope, "Mul", [half, onePlusT]),
    derivative: () => {
      const slope = g.one(ds, "Add", [g.one(ds, "Mul", [g.one(ds, "Mul", [x, x]), c(3 * GELU_C * SQRT_2_OVER_PI)]), c(SQRT_2_OVER_PI)]);
      const tail = g.one(ds, "Mul", [g.one(ds, "Mul", [half, g.one(ds, "Sub", [c(1), t])]), slope]);
      return g.one(ds, "Mul", [onePlusT, g.one(ds, "Add", [tail, c(0.5)])]);
    },
  };
}

/** The activations an inference graph builds, by config name (transformers' ACT2FN): the trainer's. */
export const INFERENCE_ACTIVATIONS = TRAINABLE_ACTIVATIONS;

/** An activation's forward pass only (inference graphs), for any of INFERENCE_ACTIVATIONS. */
export function activationOp(g: GraphBuilder, scope: string, name: string, x: string): string {
  return activationForward(g, scope, name, x).y;
}
