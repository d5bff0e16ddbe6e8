import { spawnSync } from "node:child_process";
import path from "node:path";

export const repoRoot = path.resolve(import.meta.dirname, "..");
const bin = path.join(repoRoot, "packages/cli/dist/bin.js");

export interface CliRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built `lowrank` command. */
export function lowrank(args: string[], env: Record<string, string> = {}): CliRun {
  const run = spawnSync(process.execPath, [bin, ...args], { encoding: "utf8", env: { ...process.env, ...env }, cwd: repoRoot });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}
