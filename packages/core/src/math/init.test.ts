import { describe, expect, test } from "vitest";
import type { LowrankError } from "../errors/lowrank-error.js";
import { captureLowrankError } from "../testing/capture-error.js";
import { maxAbsDiff } from "../testing/fixtures.js";
import type { WeightLayout } from "../model/model-description.js";
import { initLoraFactors, type InitParams } from "./init.js";
import { qrDecomposition } from "./linalg.js";
import { SeededRandom } from "./random.js";

const LAYOUTS: WeightLayout[] = ["out_in", "in_out"];

function params(overrides: Partial<InitParams>): InitParams {
  return { init: true, kind: "linear", r: 4, inFeatures: 32, outFeatures: 24, scaling: 2, seed: 1, ...overrides };
}

function stats(x: ArrayLike<number>): { mean: number; std: number; min: number; max: number } {
  let sum = 0,
    sq = 0,
    min = Infinity,
    max = -Infinity;
  for (let i = 0; i < x.length; i++) {
    sum += x[i]!;
    sq += x[i]! * x[i]!;
    min = Math.min(min, x[i]!);
    max = Math.max(max, x[i]!);
  }
  const mean = sum / x.length;
  return { mean, std: Math.sqrt(sq / x.length - mean * mean), min, max };
}

const allZero = (x: ArrayLike<number>) => Array.prototype.every.call(x, (v: number) => v === 0);

/** scaling·B·A as float64 [out, in]. */
function product(B: ArrayLike<number>, A: ArrayLike<number>, out: number, inn: number, r: number, scaling: number): Float64Array {
  const d = new Float64Array(out * inn);
  for (let o = 0; o < out; o++)
    for (let i = 0; i < inn; i++) {
      let s = 0;
      for (let k = 0; k < r; k++) s += B[o * r + k]! * A[k * inn + i]!;
      d[o * inn + i] = scaling * s;
    }
  return d;
}

/** A stored-layout matrix viewed as [out, in]. */
function outIn(w: ArrayLike<number>, layout: WeightLayout, out: number, inn: number): Float64Array {
  const m = new Float64Array(out * inn);
  for (let o = 0; o < out; o++) for (let i = 0; i < inn; i++) m[o * inn + i] = layout === "out_in" ? w[o * inn + i]! : w[i * out + o]!;
  return m;
}

function initError(p: InitParams): LowrankError {
  return captureLowrankError(() => initLoraFactors(p));
}

/**
 * A weight with a known SVD: W = U·diag(σ)·Vᵀ ([out, in]) from orthonormal U, V (QR of random
 * matrices) and distinct σ, plus its best rank-r approximation Σ_{j<r} σ_j u_j v_jᵀ.
 */
function knownSpectrum(out: number, inn: number, seed: number) {
  const rng = new SeededRandom(seed);
  const k = Math.min(out, inn);
  const U = qrDecomposition(
    Float64Array.from({ length: out * k }, () => rng.normal()),
    out,
    k,
  ).q;
  const V = qrDecomposition(
    Float64Array.from({ length: inn * k }, () => rng.normal()),
    inn,
    k,
  ).q;
  const sigma = Array.from({ length: k }, (_, j) => 3 * 0.6 ** j);
  const rankApprox = (r: number) => {
    const m = new Float64Array(out * inn);
    for (let o = 0; o < out; o++)
      for (let i = 0; i < inn; i++) {
        let s = 0;
        for (let j = 0; j < r; j++) s += U[o * k + j]! * sigma[j]! * V[i * k + j]!;
        m[o * inn + i] = s;
      }
    return m;
  };
  return { w: rankApprox(k), rankApprox };
}

function stored(m: Float64Array, layout: WeightLayout, out: number, inn: number): Float32Array {
  const w = new Float32Array(out * inn);
  for (let o = 0; o < out; o++) for (let i = 0; i < inn; i++) w[layout === "out_in" ? o * inn + i : i * out + o] = m[o * inn + i]!;
  return w;
}

describe("init_lora_weights = true", () => {
  test.each([
    [1, 7],
    [4, 64],
    [8, 1000],
  ])("linear, r=%i, in=%i: A ~ U(±1/√in), B = 0", (r, inFeatures) => {
    const { A, B, residualWeight } = initLoraFactors(params({ r, inFeatures }));
    expect(A.length).toBe(r * inFeatures);
    expect(B.length).toBe(24 * r);
    const bound = 1 / Math.sqrt(inFeatures);
    const s = stats(A);
    expect(s.min).toBeGreaterThanOrEqual(-bound);
    expect(s.max).toBeLessThanOrEqual(bound);
    expect(allZero(A)).toBe(false);
    expect(allZero(B)).toBe(true);
    expect(residualWeight).toBeUndefined();
  });

  test("linear A fills the uniform range: mean ≈ 0, std ≈ bound/√3", () => {
    const inFeatures = 4096;
    const { A } = initLoraFactors(params({ r: 8, inFeatures }));
    const bound = 1 / Math.sqrt(inFeatures);
    const s = stats(A);
    expect(Math.abs(s.mean)).toBeLessThan(0.02 * bound);
    expect(s.std / (bound / Math.sqrt(3))).toBeCloseTo(1, 1);
    expect(s.max).toBeGreaterThan(0.99 * bound);
    expect(s.min).toBeLessThan(-0.99 * bound);
  });

  test("embedding: A = 0, B ~ N(0, 1)", () => {
    const { A, B } = initLoraFactors(params({ kind: "embedding", r: 8, inFeatures: 50, outFeatures: 4096 }));
    expect(allZero(A)).toBe(true);
    const s = stats(B);
    expect(B.length).toBe(4096 * 8);
    expect(Math.abs(s.mean)).toBeLessThan(0.03);
    expect(Math.abs(s.std - 1)).toBeLessThan(0.03);
    // a normal, not a uniform: about 4.6 % of 32768 samples beyond ±2σ
    const tails = Array.from(B).filter((x) => Math.abs(x) > 2).length / B.length;
    expect(tails).toBeGreaterThan(0.035);
    expect(tails).toBeLessThan(0.057);
  });
});

describe('init_lora_weights = "gaussian"', () => {
  test.each([1, 4, 16])("r=%i: B = 0, A ~ N(0, (1/r)²)", (r) => {
    const { A, B } = initLoraFactors(params({ init: "gaussian", r, inFeatures: Math.ceil(40000 / r), outFeatures: 8 }));
    expect(allZero(B)).toBe(true);
    const s = stats(A);
    expect(Math.abs(s.mean) * r).toBeLessThan(0.03);
    expect(Math.abs(s.std * r - 1)).toBeLessThan(0.03);
  });

  test.each(["gaussian", "pissa", "olora"])("embedding with %s: A = 0, B ~ N(0, 1) (PEFT's embedding init ignores the value)", (init) => {
    const { A, B } = initLoraFactors(params({ init, kind: "embedding", r: 4, outFeatures: 4096 }));
    expect(allZero(A)).toBe(true);
    expect(Math.abs(stats(B).std - 1)).toBeLessThan(0.04);
  });
});

describe("init_lora_weights = false", () => {
  test("linear: A ~ U(±1/√in), B ~ U(±1/√r), both non-zero", () => {
    const r = 4,
      inFeatures = 100;
    const { A, B } = initLoraFactors(params({ init: false, r, inFeatures, outFeatures: 500 }));
    expect(allZero(A)).toBe(false);
    expect(allZero(B)).toBe(false);
    const a = stats(A);
    const b = stats(B);
    expect(Math.max(-a.min, a.max)).toBeLessThanOrEqual(1 / Math.sqrt(inFeatures));
    expect(Math.max(-b.min, b.max)).toBeLessThanOrEqual(1 / Math.sqrt(r));
    expect(b.max).toBeGreaterThan(0.95 / Math.sqrt(r));
  });

  test("embedding: both A and B are standard normal", () => {
    const { A, B } = initLoraFactors(params({ init: false, kind: "embedding", r: 8, inFeatures: 2000, outFeatures: 2000 }));
    expect(Math.abs(stats(A).std - 1)).toBeLessThan(0.04);
    expect(Math.abs(stats(B).std - 1)).toBeLessThan(0.04);
  });
});

describe("seeding", () => {
  test.each([
    [true, "linear"],
    ["gaussian", "linear"],
    [false, "linear"],
    [true, "embedding"],
    [false, "embedding"],
  ] as const)("init=%s, %s: the same seed gives identical factors, another seed different ones", (init, kind) => {
    const a = initLoraFactors(params({ init, kind, seed: 7 }));
    const b = initLoraFactors(params({ init, kind, seed: 7 }));
    const c = initLoraFactors(params({ init, kind, seed: 8 }));
    expect(a.A).toEqual(b.A);
    expect(a.B).toEqual(b.B);
    const random = kind === "embedding" ? a.B : a.A;
    const other = kind === "embedding" ? c.B : c.A;
    expect(random.length).toBe(other.length);
    expect(maxAbsDiff(random, other)).toBeGreaterThan(0);
  });
});

describe.each(LAYOUTS)("pissa / olora, %s layout", (layout) => {
  const shapes: [number, number, number][] = [
    [12, 8, 3],
    [8, 12, 3],
    [10, 10, 1],
    [9, 6, 6],
  ];

  test.each(shapes)('"pissa" out=%i in=%i r=%i: scaling·B·A + residual = W and scaling·B·A is the best rank-r approximation', (out, inn, r) => {
    const scaling = 0.5;
    const { w, rankApprox } = knownSpectrum(out, inn, out * 100 + inn);
    const base = stored(w, layout, out, inn);
    const baseCopy = base.slice();
    const { A, B, residualWeight } = initLoraFactors(params({ init: "pissa", r, inFeatures: inn, outFeatures: out, scaling, baseWeight: base, layout }));
    expect(base).toEqual(baseCopy); // the caller's weight is not modified
    const delta = product(B, A, out, inn, r, scaling);
    const recombined = outIn(residualWeight!, layout, out, inn).map((x, k) => x + delta[k]!);
    expect(maxAbsDiff(recombined, outIn(base, layout, out, inn))).toBeLessThan(1e-5);
    expect(maxAbsDiff(delta, rankApprox(r))).toBeLessThan(1e-5);
    // the residual is what the top-r directions leave: W − W_r
    expect(
      maxAbsDiff(
        outIn(residualWeight!, layout, out, inn),
        w.map((x, k) => x - rankApprox(r)[k]!),
      ),
    ).toBeLessThan(1e-5);
  });

  test('"pissa": A and B share √(S/scaling): rows of A and columns of B have equal norms', () => {
    const out = 10,
      inn = 7,
      r = 3,
      scaling = 4;
    const { w } = knownSpectrum(out, inn, 5);
    const { A, B } = initLoraFactors(params({ init: "pissa", r, inFeatures: inn, outFeatures: out, scaling, baseWeight: stored(w, layout, out, inn), layout }));
    for (let j = 0; j < r; j++) {
      let na = 0,
        nb = 0;
      for (let i = 0; i < inn; i++) na += A[j * inn + i]! ** 2;
      for (let o = 0; o < out; o++) nb += B[o * r + j]! ** 2;
      // ‖A_j‖² = ‖B_j‖² = σ_j / scaling with σ_j = 3·0.6^j
      expect(na).toBeCloseTo((3 * 0.6 ** j) / scaling, 5);
      expect(nb).toBeCloseTo((3 * 0.6 ** j) / scaling, 5);
    }
  });

  test('"pissa_niter_4" gives the same factors as "pissa"', () => {
    const { w } = knownSpectrum(8, 6, 9);
    const p = params({ r: 2, inFeatures: 6, outFeatures: 8, baseWeight: stored(w, layout, 8, 6), layout });
    const a = initLoraFactors({ ...p, init: "pissa" });
    const b = initLoraFactors({ ...p, init: "pissa_niter_4" });
    expect(b.A).toEqual(a.A);
    expect(b.B).toEqual(a.B);
  });

  test.each(shapes)('"olora" out=%i in=%i r=%i: scaling·B·A + residual = W, B = Q[:, :r] orthonormal, A = R[:r] upper triangular', (out, inn, r) => {
    const scaling = 2;
    const rng = new SeededRandom(out + inn + r);
    const base = Float32Array.from({ length: out * inn }, () => rng.uniform(-1, 1));
    const { A, B, residualWeight } = initLoraFactors(params({ init: "olora", r, inFeatures: inn, outFeatures: out, scaling, baseWeight: base, layout }));
    const delta = product(B, A, out, inn, r, scaling);
    const recombined = outIn(residualWeight!, layout, out, inn).map((x, k) => x + delta[k]!);
    expect(maxAbsDiff(recombined, outIn(base, layout, out, inn))).toBeLessThan(1e-5);
    for (let c1 = 0; c1 < r; c1++)
      for (let c2 = 0; c2 < r; c2++) {
        let s = 0;
        for (let o = 0; o < out; o++) s += B[o * r + c1]! * B[o * r + c2]!;
        expect(Math.abs(s - (c1 === c2 ? 1 : 0))).toBeLessThan(1e-6);
      }
    for (let j = 0; j < r; j++) for (let i = 0; i < Math.min(j, inn); i++) expect(A[j * inn + i]).toBe(0);
    // B·A (unscaled) is the projection of W onto span(B): BᵀW = A
    const wOI = outIn(base, layout, out, inn);
    for (let j = 0; j < r; j++)
      for (let i = 0; i < inn; i++) {
        let s = 0;
        for (let o = 0; o < out; o++) s += B[o * r + j]! * wOI[o * inn + i]!;
        expect(Math.abs(s - A[j * inn + i]!)).toBeLessThan(1e-5);
      }
  });

  test("r greater than min(out, in) is refused", () => {
    const base = new Float32Array(6 * 4).fill(1);
    for (const init of ["pissa", "olora"]) {
      const e = initError(params({ init, r: 5, inFeatures: 4, outFeatures: 6, baseWeight: base, layout, label: "m" }));
      expect(e.code).toBe("INIT_UNSUPPORTED");
      expect(e.message).toBe(`m: r = 5 exceeds min(out, in) = 4 for ${init}`);
    }
  });
});

describe("unsupported initialisations", () => {
  test.each(["loftq", "eva", "PISSA", "pissa_niter_", "pissa_niter_x", "corda", ""])("linear %j → INIT_UNSUPPORTED", (init) => {
    const e = initError(params({ init, label: "h.0.q" }));
    expect(e.code).toBe("INIT_UNSUPPORTED");
    expect(e.usage).toBe(true);
    expect(e.message).toBe(`h.0.q: \`init_lora_weights\` ${JSON.stringify(init)} is not supported; use true, false, "gaussian", "pissa" or "olora"`);
  });

  test.each(["loftq"])("embedding %j → INIT_UNSUPPORTED (PEFT runs LoftQ there, which lowrank does not)", (init) => {
    const e = initError(params({ init, kind: "embedding", label: "wte" }));
    expect(e.code).toBe("INIT_UNSUPPORTED");
    expect(e.message).toMatch(/^wte: .* is not supported for an embedding layer$/);
  });

  test.each(["pissa", "olora"])("%s without the base weight → INIT_UNSUPPORTED", (init) => {
    const e = initError(params({ init }));
    expect(e.code).toBe("INIT_UNSUPPORTED");
    expect(e.message).toMatch(/needs the base weight$/);
  });
});
