import { describe, expect, test } from "vitest";
import fc from "fast-check";
import { captureLowrankError } from "../testing/capture-error.js";
import type { WeightLayout } from "../model/model-description.js";
import type { LoraFactors } from "./lora-factors.js";
import { loraDelta, mergeLora, mergeLoraBias, outputNorms, storedShape, unmergeLora } from "./merge.js";
import { SeededRandom } from "./random.js";

const RANKS = [1, 2, 3, 4, 5, 8, 16];
const LAYOUTS: WeightLayout[] = ["out_in", "in_out"];
const CASES = RANKS.flatMap((r) => LAYOUTS.map((layout) => [r, layout] as const));

function randomMatrix(rng: SeededRandom, length: number, scale = 1): Float32Array {
  return Float32Array.from({ length }, () => rng.uniform(-scale, scale));
}

function makeFactors(seed: number, r: number, layout: WeightLayout, extra: { dora?: boolean; bias?: boolean; size?: [number, number] } = {}): LoraFactors {
  const rng = new SeededRandom(seed);
  const inFeatures = extra.size ? extra.size[1] : 1 + Math.floor(rng.next() * 20);
  const outFeatures = extra.size ? extra.size[0] : 1 + Math.floor(rng.next() * 20);
  return {
    A: randomMatrix(rng, r * inFeatures),
    B: randomMatrix(rng, outFeatures * r),
    r,
    inFeatures,
    outFeatures,
    scaling: 0.25 + rng.next() * 3,
    layout,
    magnitude: extra.dora ? Float32Array.from({ length: outFeatures }, () => 0.5 + rng.next() * 2) : undefined,
    loraBias: extra.bias ? randomMatrix(rng, outFeatures) : undefined,
  };
}

function randomWeight(seed: number, f: LoraFactors): Float32Array {
  return randomMatrix(new SeededRandom(seed ^ 0x5eed), f.inFeatures * f.outFeatures);
}

/** scaling·B·A as a float64 [out, in] matrix (triple loop). */
function naiveDeltaOutIn(f: LoraFactors): Float64Array {
  const d = new Float64Array(f.outFeatures * f.inFeatures);
  for (let o = 0; o < f.outFeatures; o++) {
    for (let i = 0; i < f.inFeatures; i++) {
      let acc = 0;
      for (let k = 0; k < f.r; k++) acc += f.B[o * f.r + k]! * f.A[k * f.inFeatures + i]!;
      d[o * f.inFeatures + i] = f.scaling * acc;
    }
  }
  return d;
}

/** Index of element [o, i] in the stored layout. */
function at(f: LoraFactors, o: number, i: number): number {
  return f.layout === "out_in" ? o * f.inFeatures + i : i * f.outFeatures + o;
}

/** A float64 [out, in] matrix rearranged into the stored layout. */
function toStored(f: LoraFactors, m: Float64Array): Float64Array {
  const out = new Float64Array(m.length);
  for (let o = 0; o < f.outFeatures; o++) for (let i = 0; i < f.inFeatures; i++) out[at(f, o, i)] = m[o * f.inFeatures + i]!;
  return out;
}

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

function bytesOf(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength));
}

describe("loraDelta", () => {
  test.each(CASES)("rank %i, %s: equals scaling·B·A (float64 triple loop) in the stored layout", (r, layout) => {
    fc.assert(
      fc.property(fc.nat(), (seed) => {
        const f = makeFactors(seed, r, layout);
        const want = toStored(f, naiveDeltaOutIn(f));
        expect(maxAbs(loraDelta(f), want)).toBeLessThan(1e-5);
      }),
      { numRuns: 25 },
    );
  });

  test("in_out is exactly the transpose of out_in", () => {
    const f = makeFactors(11, 3, "out_in");
    const g = { ...f, layout: "in_out" as const };
    const a = loraDelta(f);
    const b = loraDelta(g);
    for (let o = 0; o < f.outFeatures; o++) for (let i = 0; i < f.inFeatures; i++) expect(b[i * f.outFeatures + o]).toBe(a[o * f.inFeatures + i]);
  });

  test("storedShape follows the layout", () => {
    const f = makeFactors(1, 2, "out_in");
    expect(storedShape(f)).toEqual([f.outFeatures, f.inFeatures]);
    expect(storedShape({ ...f, layout: "in_out" })).toEqual([f.inFeatures, f.outFeatures]);
  });
});

describe("mergeLora / unmergeLora (plain LoRA)", () => {
  test.each(CASES)("rank %i, %s: merge = W + scaling·B·A, unmerge restores W within 1e-6", (r, layout) => {
    fc.assert(
      fc.property(fc.nat(), fc.boolean(), (seed, safe) => {
        const f = makeFactors(seed, r, layout);
        const base = randomWeight(seed, f);
        const w = base.slice();
        const record = mergeLora(w, f, { safe });
        expect(record.weightNorm).toBeUndefined();
        const delta = toStored(f, naiveDeltaOutIn(f));
        expect(
          maxAbs(
            w,
            Float64Array.from(base, (x, k) => x + delta[k]!),
          ),
        ).toBeLessThan(1e-5);
        unmergeLora(w, f, record);
        expect(maxAbs(w, base)).toBeLessThan(1e-6);
      }),
      { numRuns: 20 },
    );
  });
});

describe("DoRA", () => {
  /** W' = (m / ‖V_o‖)·V with V = W + scaling·B·A, in the stored layout; also the norms. */
  function naiveDora(base: Float32Array, f: LoraFactors): { weight: Float64Array; norms: Float64Array } {
    const delta = naiveDeltaOutIn(f);
    const v = new Float64Array(base.length);
    for (let o = 0; o < f.outFeatures; o++) for (let i = 0; i < f.inFeatures; i++) v[at(f, o, i)] = base[at(f, o, i)]! + delta[o * f.inFeatures + i]!;
    const norms = new Float64Array(f.outFeatures);
    for (let o = 0; o < f.outFeatures; o++) {
      let s = 0;
      for (let i = 0; i < f.inFeatures; i++) s += v[at(f, o, i)]! ** 2;
      norms[o] = Math.sqrt(s);
    }
    const weight = v.map((x, k) => {
      const o = f.layout === "out_in" ? Math.floor(k / f.inFeatures) : k % f.outFeatures;
      return (f.magnitude![o]! / norms[o]!) * x;
    });
    return { weight, norms };
  }

  test.each(CASES)("rank %i, %s: merge equals the DoRA formula, unmerge with the record restores W", (r, layout) => {
    fc.assert(
      fc.property(fc.nat(), (seed) => {
        const f = makeFactors(seed, r, layout, { dora: true });
        const base = randomWeight(seed, f);
        const w = base.slice();
        const record = mergeLora(w, f);
        const want = naiveDora(base, f);
        expect(maxAbs(w, want.weight)).toBeLessThan(1e-5);
        expect(maxAbs(record.weightNorm!, want.norms)).toBeLessThan(1e-5);
        // after the merge every output feature's norm is its magnitude
        expect(maxAbs(outputNorms(w, f), f.magnitude!)).toBeLessThan(1e-5);
        unmergeLora(w, f, record);
        expect(maxAbs(w, base)).toBeLessThan(1e-5);
      }),
      { numRuns: 20 },
    );
  });

  test("in_out norms are the column norms of the stored matrix", () => {
    // stored [in=2, out=3]
    const w = Float32Array.of(3, 0, 1, 4, 0, 1);
    expect(Array.from(outputNorms(w, { layout: "in_out", inFeatures: 2, outFeatures: 3 }))).toEqual([5, 0, Math.fround(Math.SQRT2)]);
    expect(Array.from(outputNorms(w, { layout: "out_in", inFeatures: 3, outFeatures: 2 }))).toEqual([Math.fround(Math.sqrt(10)), Math.fround(Math.sqrt(17))]);
  });

  test("unmerging DoRA without the record is refused", () => {
    const f = makeFactors(5, 2, "out_in", { dora: true });
    const w = randomWeight(5, f);
    mergeLora(w, f);
    const e = captureLowrankError(() => unmergeLora(w, f, {}, { label: "h.0.attn" }));
    expect(e.code).toBe("ADAPTER_INVALID");
    expect(e.message).toMatch(/^h\.0\.attn: /);
  });
});

describe("safe merge", () => {
  const poison: [string, (f: LoraFactors) => void][] = [
    [
      "NaN in lora_A",
      (f) => {
        f.A[0] = NaN;
      },
    ],
    [
      "Infinity in lora_B",
      (f) => {
        f.B[f.B.length - 1] = Infinity;
      },
    ],
    [
      "a product that overflows float32",
      (f) => {
        f.A.fill(1e30);
        f.B.fill(1e30);
      },
    ],
    [
      "a product that overflows to -Infinity",
      (f) => {
        f.A[0] = -3e38;
        f.B.fill(3e38);
      },
    ],
  ];
  test.each(LAYOUTS.flatMap((l) => poison.map(([what, p]) => [l, what, p] as const)))(
    "%s, %s: throws MERGE_NOT_FINITE and leaves the weight byte-identical",
    (layout, _what, apply) => {
      const f = makeFactors(7, 4, layout, { bias: true });
      apply(f);
      const w = randomWeight(7, f);
      const before = bytesOf(w);
      const bias = randomMatrix(new SeededRandom(8), f.outFeatures);
      const biasBefore = bytesOf(bias);
      const e = captureLowrankError(() => mergeLora(w, f, { safe: true, label: "layer.7", bias }));
      expect(e.code).toBe("MERGE_NOT_FINITE");
      expect(e.message).toMatch(/^layer\.7: merging gives a non-finite value/);
      expect(bytesOf(w)).toEqual(before);
      expect(bytesOf(bias)).toEqual(biasBefore);
    },
  );

  test.each(LAYOUTS)("%s: a DoRA merge whose norm is 0 (magnitude / 0) throws under safe and leaves the weight", (layout) => {
    const f = makeFactors(9, 1, layout, { dora: true });
    f.A.fill(0);
    const w = new Float32Array(f.inFeatures * f.outFeatures); // V = 0 → m / 0 = Infinity, 0·Infinity = NaN
    const before = bytesOf(w);
    expect(captureLowrankError(() => mergeLora(w, f, { safe: true })).code).toBe("MERGE_NOT_FINITE");
    expect(bytesOf(w)).toEqual(before);
  });

  test.each(LAYOUTS)("%s: a non-finite lora_B.bias under safe leaves weight and bias untouched", (layout) => {
    const f = makeFactors(10, 2, layout, { bias: true });
    f.loraBias![0] = NaN;
    const w = randomWeight(10, f);
    const before = bytesOf(w);
    const bias = new Float32Array(f.outFeatures).fill(0.5);
    expect(captureLowrankError(() => mergeLora(w, f, { safe: true, bias })).code).toBe("MERGE_NOT_FINITE");
    expect(bytesOf(w)).toEqual(before);
    expect(Array.from(bias).every((b) => b === 0.5)).toBe(true);
  });

  test.each(LAYOUTS)("%s: without safe the merge does not throw and the weight holds the non-finite values", (layout) => {
    const f = makeFactors(7, 4, layout);
    f.A.fill(1e30);
    f.B.fill(1e30);
    const w = randomWeight(7, f);
    expect(() => mergeLora(w, f)).not.toThrow();
    expect(w.some((x) => !Number.isFinite(x))).toBe(true);
  });

  test("a finite safe merge writes into the caller's array", () => {
    const f = makeFactors(12, 2, "out_in");
    const w = randomWeight(12, f);
    const unsafe = w.slice();
    mergeLora(unsafe, f);
    mergeLora(w, f, { safe: true });
    expect(bytesOf(w)).toEqual(bytesOf(unsafe));
  });
});

describe("shape checks", () => {
  const f = () => makeFactors(3, 2, "out_in", { dora: true, bias: true });
  test.each([
    [
      "lora_A too short",
      (x: LoraFactors) => {
        x.A = x.A.subarray(1);
      },
      /lora_A has \d+ values, expected r × in/,
    ],
    [
      "lora_B too long",
      (x: LoraFactors) => {
        x.B = new Float32Array(x.B.length + 1);
      },
      /lora_B has \d+ values, expected out × r/,
    ],
    [
      "r inconsistent with the factors",
      (x: LoraFactors) => {
        x.r = 3;
      },
      /lora_A has \d+ values/,
    ],
    [
      "magnitude of the wrong length",
      (x: LoraFactors) => {
        x.magnitude = new Float32Array(x.outFeatures + 1);
      },
      /lora_magnitude_vector has \d+ values, expected out = \d+/,
    ],
    [
      "lora bias of the wrong length",
      (x: LoraFactors) => {
        x.loraBias = new Float32Array(x.outFeatures + 2);
      },
      /lora_B\.bias has \d+ values, expected out = \d+/,
    ],
  ])("%s → SHAPE_MISMATCH from merge, unmerge and loraDelta", (_what, breakIt, pattern) => {
    const x = f();
    const w = randomWeight(3, x);
    breakIt(x);
    const before = bytesOf(w);
    for (const run of [() => mergeLora(w, x, { label: "L" }), () => unmergeLora(w, x, { weightNorm: new Float32Array(x.outFeatures) }, { label: "L" })]) {
      const e = captureLowrankError(run);
      expect(e.code).toBe("SHAPE_MISMATCH");
      expect(e.message).toMatch(/^L: /);
      expect(e.message).toMatch(pattern);
    }
    expect(captureLowrankError(() => loraDelta(x)).code).toBe("SHAPE_MISMATCH");
    expect(bytesOf(w)).toEqual(before);
  });

  test.each(LAYOUTS)("%s: a base weight of the wrong size → SHAPE_MISMATCH naming the stored shape", (layout) => {
    const x = makeFactors(4, 2, layout);
    const w = new Float32Array(x.inFeatures * x.outFeatures + 1);
    const [a, b] = storedShape(x);
    for (const run of [() => mergeLora(w, x, { label: "blk" }), () => unmergeLora(w, x, {}, { label: "blk" })]) {
      const e = captureLowrankError(run);
      expect(e.code).toBe("SHAPE_MISMATCH");
      expect(e.message).toBe(`blk: base weight has ${w.length} values, but the adapter expects [${a}, ${b}]`);
    }
  });

  test("a layer bias whose length differs from lora_B.bias → SHAPE_MISMATCH", () => {
    const x = makeFactors(6, 2, "out_in", { bias: true });
    const w = randomWeight(6, x);
    const before = bytesOf(w);
    const e = captureLowrankError(() => mergeLora(w, x, { bias: new Float32Array(x.outFeatures + 1), safe: true }));
    expect(e.code).toBe("SHAPE_MISMATCH");
    expect(bytesOf(w)).toEqual(before);
  });
});

describe("lora_bias", () => {
  test.each(LAYOUTS)("%s: merge adds scaling·lora_B.bias to the layer bias, unmerge removes it", (layout) => {
    const f = makeFactors(21, 3, layout, { bias: true });
    const w = randomWeight(21, f);
    const bias = randomMatrix(new SeededRandom(22), f.outFeatures);
    const biasBefore = bias.slice();
    const record = mergeLora(w, f, { bias });
    expect(
      maxAbs(
        bias,
        Float64Array.from(biasBefore, (b, o) => b + f.scaling * f.loraBias![o]!),
      ),
    ).toBeLessThan(1e-6);
    unmergeLora(w, f, record, { bias });
    expect(maxAbs(bias, biasBefore)).toBeLessThan(1e-6);
  });

  test("the layer bias is untouched without lora_B.bias, and lora_B.bias is ignored without a layer bias", () => {
    const f = makeFactors(23, 2, "out_in");
    const w = randomWeight(23, f);
    const bias = Float32Array.of(...new Array(f.outFeatures).fill(0.25));
    mergeLora(w, f, { bias });
    expect(Array.from(bias).every((b) => b === 0.25)).toBe(true);
    const g = makeFactors(23, 2, "out_in", { bias: true });
    const w2 = randomWeight(23, g);
    expect(() => mergeLora(w2, g)).not.toThrow();
  });

  test("mergeLoraBias adds sign·scaling·loraBias", () => {
    const bias = Float32Array.of(1, 2);
    mergeLoraBias(bias, Float32Array.of(0.5, -1), 2);
    expect(Array.from(bias)).toEqual([2, 0]);
    mergeLoraBias(bias, Float32Array.of(0.5, -1), 2, { sign: -1 });
    expect(Array.from(bias)).toEqual([1, 2]);
    expect(captureLowrankError(() => mergeLoraBias(bias, Float32Array.of(Infinity, 0), 1, { safe: true })).code).toBe("MERGE_NOT_FINITE");
    expect(Array.from(bias)).toEqual([1, 2]);
    expect(captureLowrankError(() => mergeLoraBias(bias, Float32Array.of(1), 1, { label: "q" })).message).toBe(
      "q: lora_B.bias has 1 values but the layer's bias has 2",
    );
  });
});

describe("large weights (the WebAssembly kernel path, ≥ 16384 elements)", () => {
  const size: [number, number] = [160, 136];
  test.each(CASES)("rank %i, %s: merge, DoRA merge and unmerge match the reference", (r, layout) => {
    const f = makeFactors(1000 + r, r, layout, { size });
    const base = randomWeight(1000 + r, f);
    const w = base.slice();
    const record = mergeLora(w, f, { safe: true });
    const delta = toStored(f, naiveDeltaOutIn(f));
    expect(
      maxAbs(
        w,
        Float64Array.from(base, (x, k) => x + delta[k]!),
      ),
    ).toBeLessThan(1e-5);
    unmergeLora(w, f, record);
    expect(maxAbs(w, base)).toBeLessThan(1e-5);
    expect(maxAbs(loraDelta(f), delta)).toBeLessThan(1e-5);

    const d = { ...f, magnitude: Float32Array.from({ length: f.outFeatures }, (_, o) => 1 + o / f.outFeatures) };
    const wd = base.slice();
    const dr = mergeLora(wd, d);
    expect(maxAbs(outputNorms(wd, d), d.magnitude)).toBeLessThan(1e-5);
    unmergeLora(wd, d, dr);
    expect(maxAbs(wd, base)).toBeLessThan(1e-5);
  });

  test.each(LAYOUTS)("%s: a NaN factor under safe throws and leaves the large weight byte-identical", (layout) => {
    const f = makeFactors(2000, 8, layout, { size });
    f.B[17] = NaN;
    const w = randomWeight(2000, f);
    const before = bytesOf(w);
    expect(captureLowrankError(() => mergeLora(w, f, { safe: true })).code).toBe("MERGE_NOT_FINITE");
    expect(bytesOf(w)).toEqual(before);
    expect(() => mergeLora(w, f)).not.toThrow();
    expect(w.some(Number.isNaN)).toBe(true);
  });
});
