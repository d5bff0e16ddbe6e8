import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { sharedDir } from "@lowrank/core/testing";

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

/**
 * `lowrank hub serve` on a free port in a process of its own (with `env` added to its environment);
 * resolves once it listens. `exited` resolves with the signal that ended it, or its exit code.
 */
export async function startHubServeProcess(
  dir: string,
  token: string,
  env: Record<string, string> = {},
): Promise<{ url: string; stop: () => Promise<void>; kill: () => Promise<void>; exited: Promise<string | number | null> }> {
  const { spawn } = await import("node:child_process");
  const child = spawn(process.execPath, [bin, "--token", token, "hub", "serve", "--dir", dir, "--port", "0"], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...env },
  });
  const exited = new Promise<string | number | null>((resolve) => child.once("exit", (code, signal) => resolve(signal ?? code)));
  const url = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      const m = /at (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.on("exit", (code) => reject(new Error(`hub serve exited with ${code}`)));
  });
  return {
    url,
    exited,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
    /** SIGKILL: no handler runs, as in a crash or an OOM kill. */
    kill: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGKILL");
      }),
  };
}

/**
 * E2E references (rows from..from+count of ../shared/data/e2e/valid.txt) as byte-level ids, written
 * as JSONL to dir/name: real text that fits the tiny fixtures' 512-token vocabulary.
 */
export function e2eByteData(dir: string, name: string, from: number, count: number): string {
  const lines = readFileSync(path.join(sharedDir(), "data", "e2e", "valid.txt"), "utf8")
    .split("\n")
    .filter(Boolean)
    .slice(from, from + count);
  const file = path.join(dir, name);
  writeFileSync(file, lines.map((l) => JSON.stringify({ input_ids: [...Buffer.from(l.split("||")[1]!, "utf8")].slice(0, 40) })).join("\n"));
  return file;
}

/** A training log (--log file.jsonl), one object per line. */
export function readTrainingLog(file: string): { step?: number; loss?: number; seconds?: number; tokens?: number; eval_loss?: number }[] {
  return readFileSync(file, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
}
