import { existsSync } from "node:fs";
import path from "node:path";
import { LowrankError } from "../errors/lowrank-error.js";
import { toIntegers, type Tensor } from "../formats/safetensors/dtype.js";

/** The shared folder beside the checkout (`../shared` from the workspace root above the cwd), or `$LOWRANK_SHARED`. */
export function sharedDir(): string {
  if (process.env.LOWRANK_SHARED) return path.resolve(process.env.LOWRANK_SHARED);
  let dir = process.cwd();
  for (;;) {
    if (existsSync(path.join(dir, "pnpm-workspace.yaml"))) return path.resolve(dir, "..", "shared");
    const parent = path.dirname(dir);
    if (parent === dir) return path.resolve(process.cwd(), "..", "shared");
    dir = parent;
  }
}

export function fixturesDir(): string {
  return path.join(sharedDir(), "fixtures");
}

/** The path of a fixture file; throws (a test failure, never a skip) when it is missing. */
export function requireFixture(...parts: string[]): string {
  const p = path.join(fixturesDir(), ...parts);
  if (!existsSync(p)) throw new Error(`fixture missing: ${p} (set LOWRANK_SHARED to the shared folder)`);
  return p;
}

/** Largest absolute elementwise difference; Infinity when lengths differ or a value is NaN. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let max = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= max)) max = Number.isNaN(d) ? Infinity : d;
  }
  return max;
}

/** An integer tensor [b, s] (token ids, a mask) as rows of plain numbers. */
export function idRows(t: Tensor): number[][] {
  const flat = toIntegers(t);
  const [b, s] = t.shape;
  if (b === undefined || s === undefined) {
    throw new LowrankError("SHAPE_MISMATCH", `idRows: expected a [batch, sequence] tensor, got shape [${t.shape.join(", ")}]`);
  }
  return Array.from({ length: b }, (_, i) => flat.slice(i * s, (i + 1) * s));
}
