import { LowrankError } from "../errors/lowrank-error.js";
import type { WeightLayout } from "../model/model-description.js";
import { qrDecomposition, svdDecomposition } from "./linalg.js";
import { SeededRandom } from "./random.js";

/** The init_lora_weights values lowrank implements ("pissa_niter_N" is computed with an exact SVD). */
export type LoraInit = true | false | "gaussian" | "pissa" | "olora" | `pissa_niter_${number}`;

export interface InitParams {
  init: boolean | string;
  kind: "linear" | "conv1d" | "embedding";
  r: number;
  inFeatures: number;
  outFeatures: number;
  scaling: number;
  seed: number;
  /** The base weight in its stored layout; needed (and rewritten) by pissa and olora. */
  baseWeight?: Float32Array;
  layout?: WeightLayout;
  label?: string;
}

export interface InitResult {
  A: Float32Array;
  B: Float32Array;
  /** pissa / olora: the base weight with the initial update removed (stored layout). */
  residualWeight?: Float32Array;
}

/** Base weight as a float64 [out, in] matrix. */
function orientOutIn(w: Float32Array, layout: WeightLayout, out: number, inn: number): Float64Array {
  const m = new Float64Array(out * inn);
  if (layout === "out_in") m.set(w);
  else for (let i = 0; i < inn; i++) for (let o = 0; o < out; o++) m[o * inn + i] = w[i * out + o]!;
  return m;
}

function residual(
  base: Float32Array,
  layout: WeightLayout,
  out: number,
  inn: number,
  A: Float32Array,
  B: Float32Array,
  r: number,
  scaling: number,
): Float32Array {
  const res = new Float32Array(base.length);
  for (let o = 0; o < out; o++) {
    for (let i = 0; i < inn; i++) {
      let d = 0;
      for (let k = 0; k < r; k++) d += B[o * r + k]! * A[k * inn + i]!;
      const idx = layout === "out_in" ? o * inn + i : i * out + o;
      res[idx] = base[idx]! - scaling * d;
    }
  }
  return res;
}

/**
 * Initial LoRA factors, as PEFT's `reset_lora_parameters` / `pissa_init` / `olora_init` make them:
 * - true: A ~ kaiming-uniform(a=√5), i.e. U(−1/√in, 1/√in); B = 0. Embeddings: A = 0, B ~ N(0, 1) for
 *   any value but false, as in PEFT.
 * - "gaussian": A ~ N(0, (1/r)²); B = 0.
 * - false: both random like PyTorch's default Linear init (A and B kaiming-uniform), for tests.
 * - "pissa": A = √S_r·V_rᵀ, B = U_r·√S_r from the top-r SVD of W (S divided by scaling); W −= scaling·B·A.
 * - "olora": Q, R = qr(W); B = Q[:, :r], A = R[:r]; W −= scaling·B·A.
 * @throws LowrankError INIT_UNSUPPORTED for any other value.
 */
export function initLoraFactors(p: InitParams): InitResult {
  const label = p.label ?? "init";
  const rng = new SeededRandom(p.seed);
  const A = new Float32Array(p.r * p.inFeatures);
  const B = new Float32Array(p.outFeatures * p.r);
  const init = p.init;
  if (p.kind === "embedding") {
    if (init === false) {
      for (let i = 0; i < A.length; i++) A[i] = rng.normal();
    }
    for (let i = 0; i < B.length; i++) B[i] = rng.normal();
    // PEFT's embedding layers run LoftQ for "loftq" and otherwise take A = 0, B ~ N(0, 1) for every
    // truthy value ("gaussian", "pissa", …).
    if (init !== "loftq") return { A, B };
    throw new LowrankError("INIT_UNSUPPORTED", `${label}: \`init_lora_weights\` "loftq" is not supported for an embedding layer`);
  }
  if (init === true || init === false) {
    const boundA = 1 / Math.sqrt(p.inFeatures);
    for (let i = 0; i < A.length; i++) A[i] = rng.uniform(-boundA, boundA);
    if (init === false) {
      const boundB = 1 / Math.sqrt(p.r);
      for (let i = 0; i < B.length; i++) B[i] = rng.uniform(-boundB, boundB);
    }
    return { A, B };
  }
  if (init === "gaussian") {
    for (let i = 0; i < A.length; i++) A[i] = rng.normal() / p.r;
    return { A, B };
  }
  const isPissa = init === "pissa" || /^pissa_niter_\d+$/.test(init);
  if (!isPissa && init !== "olora") {
    throw new LowrankError(
      "INIT_UNSUPPORTED",
      `${label}: \`init_lora_weights\` ${JSON.stringify(init)} is not supported; use true, false, "gaussian", "pissa" or "olora"`,
    );
  }
  if (!p.baseWeight || !p.layout) throw new LowrankError("INIT_UNSUPPORTED", `${label}: ${init} initialisation needs the base weight`);
  const out = p.outFeatures;
  const inn = p.inFeatures;
  const w = orientOutIn(p.baseWeight, p.layout, out, inn);
  if (p.r > Math.min(out, inn)) throw new LowrankError("INIT_UNSUPPORTED", `${label}: r = ${p.r} exceeds min(out, in) = ${Math.min(out, inn)} for ${init}`);
  if (isPissa) {
    const { u, s, v, k } = svdDecomposition(w, out, inn);
    for (let j = 0; j < p.r; j++) {
      const root = Math.sqrt(s[j]! / p.scaling);
      for (let i = 0; i < inn; i++) A[j * inn + i] = root * v[i * k + j]!;
      for (let o = 0; o < out; o++) B[o * p.r + j] = u[o * k + j]! * root;
    }
  } else {
    const { q, r: rMat, k } = qrDecomposition(w, out, inn);
    for (let j = 0; j < p.r; j++) {
      for (let i = 0; i < inn; i++) A[j * inn + i] = rMat[j * inn + i]!;
      for (let o = 0; o < out; o++) B[o * p.r + j] = q[o * k + j]!;
    }
  }
  return { A, B, residualWeight: residual(p.baseWeight, p.layout, out, inn, A, B, p.r, p.scaling) };
}
