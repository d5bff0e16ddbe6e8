import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, test } from "vitest";
import { repoRoot } from "./cli-helpers.js";

// The layering docs/architecture.md describes, checked on the source: who may import whom, and no
// import circle within a package.
const packagesDir = path.join(repoRoot, "packages");
const packages = readdirSync(packagesDir).filter((p) => !p.startsWith("."));
const sources = (pkg: string): string[] =>
  readdirSync(path.join(packagesDir, pkg, "src"), { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts") && !f.includes(".test-"))
    .map((f) => path.join(packagesDir, pkg, "src", f));
const importsOf = (file: string): string[] =>
  [...readFileSync(file, "utf8").matchAll(/(?:from\s*|import\s*\(\s*|import\s+)["']([^"']+)["']/g)].map((m) => m[1]!);

/** Which workspace packages each package may import (docs/architecture.md). */
const ALLOWED: Record<string, string[]> = {
  core: [],
  "backend-tfjs": ["core"],
  "backend-onnx": ["core"],
  hub: ["core"],
  "hub-server": ["core", "hub"],
  serve: ["core", "backend-onnx"],
  // browser-example: the page `lowrank web` serves (examples/browser, built with the workspace).
  cli: ["core", "backend-tfjs", "backend-onnx", "hub", "hub-server", "serve", "bench", "browser-example"],
  bench: ["core", "backend-tfjs", "backend-onnx", "serve"],
};

describe("the package layering", () => {
  test("every package is known to the layering table", () => {
    expect(packages.sort()).toEqual(Object.keys(ALLOWED).sort());
  });

  test.each(packages)("%s imports only the packages below it", (pkg) => {
    const used = new Set<string>();
    for (const file of sources(pkg)) {
      for (const spec of importsOf(file)) {
        const m = /^@lowrank\/([^/]+)/.exec(spec);
        if (m && m[1] !== pkg) used.add(m[1]!);
      }
    }
    const extra = [...used].filter((p) => !ALLOWED[pkg]!.includes(p));
    expect(extra, `${pkg} imports ${extra.join(", ")}`).toEqual([]);
  });

  test.each(packages)("%s has no import circle", (pkg) => {
    const files = sources(pkg);
    const graph = new Map(
      files.map((f) => [
        f,
        importsOf(f)
          .filter((s) => s.startsWith("."))
          .map((s) => path.resolve(path.dirname(f), s.replace(/\.js$/, ".ts")))
          .filter((t) => files.includes(t)),
      ]),
    );
    const state = new Map<string, "visiting" | "done">();
    const cycle: string[] = [];
    const visit = (f: string, trail: string[]): boolean => {
      if (state.get(f) === "done") return false;
      if (state.get(f) === "visiting") {
        cycle.push(...trail.slice(trail.indexOf(f)), f);
        return true;
      }
      state.set(f, "visiting");
      for (const next of graph.get(f) ?? []) if (visit(next, [...trail, f])) return true;
      state.set(f, "done");
      return false;
    };
    for (const f of files) if (visit(f, [])) break;
    expect(cycle.map((f) => path.relative(packagesDir, f))).toEqual([]);
  });
});
