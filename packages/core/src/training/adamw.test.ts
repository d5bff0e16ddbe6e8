import { describe, expect, test } from "vitest";
import { clipGradNorm, Float32AdamW } from "./adamw.js";

describe("Float32AdamW", () => {
  test("PyTorch's AdamW: decoupled weight decay, then the bias-corrected Adam update", () => {
    const p = new Float32Array([1, -2, 0.5]);
    const params = new Map([["w", p]]);
    const opt = new Float32AdamW(params, { weightDecay: 0.1 });
    const g = new Float32Array([0.5, -0.25, 0]);
    opt.apply(new Map([["w", g]]), 0.01);
    // Step 1: m̂ = g, v̂ = g², so the update is lr·g/(|g| + ε) after p·(1 − lr·λ).
    const expected = [1 * (1 - 0.001) - 0.01 * (0.5 / (0.5 + 1e-8)), -2 * (1 - 0.001) + 0.01 * (0.25 / (0.25 + 1e-8)), 0.5 * (1 - 0.001)];
    expected.forEach((e, i) => expect(p[i]).toBeCloseTo(e, 6));
    // Step 2 by hand, in float64.
    const m = [0.9 * 0.05 + 0.1 * 0.5, 0.9 * -0.025 + 0.1 * -0.25, 0];
    const v = [0.999 * 0.00025 + 0.001 * 0.25, 0.999 * 0.0000625 + 0.001 * 0.0625, 0];
    const before = Array.from(p);
    opt.apply(new Map([["w", g]]), 0.01);
    before.forEach((b, i) => {
      const update = m[i]! / (1 - 0.9 ** 2) / (Math.sqrt(v[i]! / (1 - 0.999 ** 2)) + 1e-8);
      expect(p[i]).toBeCloseTo(b * (1 - 0.001) - 0.01 * update, 6);
    });
    expect(opt.stepCount).toBe(2);
  });

  test("state round-trips: a restored optimizer takes the same next step", () => {
    const a = new Map([["w", new Float32Array([0.3, -0.7])]]);
    const opt = new Float32AdamW(a);
    const grads = () => new Map([["w", new Float32Array([0.2, 0.1])]]);
    opt.apply(grads(), 1e-2);
    const b = new Map([["w", a.get("w")!.slice()]]);
    const copy = new Float32AdamW(b);
    copy.setState(opt.getState());
    opt.apply(grads(), 1e-2);
    copy.apply(grads(), 1e-2);
    expect(b.get("w")).toEqual(a.get("w"));
  });
});

describe("clipGradNorm", () => {
  test("returns the global norm and scales by maxNorm/(norm + 1e-6) only above the limit", () => {
    const grads = new Map([
      ["a", new Float32Array([3, 0])],
      ["b", new Float32Array([4])],
    ]);
    expect(clipGradNorm(grads, 10)).toBe(5);
    expect(grads.get("a")![0]).toBe(3);
    expect(clipGradNorm(grads, 1)).toBe(5);
    expect(grads.get("a")![0]).toBeCloseTo(3 / (5 + 1e-6), 6);
    expect(grads.get("b")![0]).toBeCloseTo(4 / (5 + 1e-6), 6);
    expect(clipGradNorm(grads, 0)).toBeCloseTo(1, 5);
  });
});
