import { expect } from "vitest";
import type { LoraAdapter } from "../adapter/lora-adapter.js";
import { collectLoraModules } from "../adapter/lora-modules.js";
import { maxAbsDiff } from "../testing/fixtures.js";

/** Each module's update scaling·B·A ([out, in], or [dim, vocab] for an embedding), by module. */
function updates(adapter: LoraAdapter): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const m of collectLoraModules(adapter).modules.values()) {
    const u = new Float32Array(m.outFeatures * m.inFeatures);
    for (let o = 0; o < m.outFeatures; o++)
      for (let k = 0; k < m.r; k++) {
        const b = m.scaling * m.B[o * m.r + k]!;
        for (let i = 0; i < m.inFeatures; i++) u[o * m.inFeatures + i]! += b * m.A[k * m.inFeatures + i]!;
      }
    out.set(m.name, u);
  }
  return out;
}

export function expectSameUpdates(ours: LoraAdapter, theirs: LoraAdapter, tolerance: number): void {
  const [a, b] = [updates(ours), updates(theirs)];
  expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
  for (const [name, u] of b) {
    const scale = u.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    expect(scale, name).toBeGreaterThan(0);
    expect(maxAbsDiff(a.get(name)!, u), name).toBeLessThanOrEqual(tolerance * Math.max(1, scale));
  }
}
