#!/usr/bin/env node
// `pnpm demo`: the main job (embedded base model, LoRA fine-tune on E2E, report) arrives with the
// demo issue. Until then it says so, and shows what already works on the shared fixtures if present.
import { existsSync } from "node:fs";
import { spawnSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
console.log("lowrank demo: not yet — the offline fine-tuning demo (embedded GPT-2-style base, LoRA on E2E) is still to come.");
const fixtures = path.resolve(root, "../shared/fixtures");
if (existsSync(path.join(fixtures, "gpt2-tiny-lora"))) {
  console.log("\nMeanwhile, what core does today — inspecting a PEFT adapter:\n");
  spawnSync(process.execPath, [path.join(root, "packages/cli/dist/bin.js"), "inspect", path.join(fixtures, "gpt2-tiny-lora"), "--base", path.join(fixtures, "gpt2-tiny")], { stdio: "inherit" });
}
