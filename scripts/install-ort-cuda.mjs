#!/usr/bin/env node
// Installs onnxruntime-node's CUDA execution provider (CUDA 12), which its own install script
// downloads and this workspace skips (pnpm's allowBuilds keeps it from running at install time).
// Run it once on a machine with an NVIDIA GPU, CUDA 12 and internet access:
//   node scripts/install-ort-cuda.mjs
// then check with `npx lowrank doctor`, and use `npx lowrank --device cuda …`.
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(path.join(root, "packages", "backend-onnx", "package.json"));
const packageDir = path.dirname(require.resolve("onnxruntime-node/package.json"));
const run = spawnSync(process.execPath, [path.join("script", "install.js")], {
  cwd: packageDir,
  stdio: "inherit",
  env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: "cuda12" },
});
if (run.status !== 0) {
  console.error("install-ort-cuda: onnxruntime-node's installer failed (it needs internet access to download the CUDA binaries)");
  process.exit(run.status ?? 1);
}
console.log(`installed onnxruntime-node's CUDA provider in ${packageDir}`);
