#!/usr/bin/env node
// `pnpm bench [--quick]`: the benchmark suite (`lowrank bench`), with its outputs in their places.
//   full run:  docs/benchmarks.md, its charts in docs/benchmarks/, the JSON in docs/benchmarks/results.json
//   --quick:   bench/out/quick.md (+ charts) and bench/out/quick.json — a CI smoke run, not published
// --out-dir <dir> puts every output in <dir> instead (used by the tests).
import { spawnSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const quick = args.includes("--quick");
const outDir = args.includes("--out-dir") ? path.resolve(args[args.indexOf("--out-dir") + 1]) : undefined;
const [json, report] = outDir
  ? [path.join(outDir, "results.json"), path.join(outDir, "benchmarks.md")]
  : quick
    ? [path.join(root, "bench", "out", "quick.json"), path.join(root, "bench", "out", "quick.md")]
    : [path.join(root, "docs", "benchmarks", "results.json"), path.join(root, "docs", "benchmarks.md")];
const run = spawnSync(
  process.execPath,
  [path.join(root, "packages", "cli", "dist", "bin.js"), "bench", ...(quick ? ["--quick"] : []), "--json", json, "--report", report],
  { stdio: "inherit", cwd: root },
);
process.exit(run.status ?? 1);
