import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { repoRoot } from "./cli-helpers.js";

// Every command in README.md runs as written. The set-up commands are what CI and the demo test run;
// every other shell block runs line by line in a scratch folder that sees the repository's files
// (models/, examples/, data/, node_modules/) — as on a fresh clone after the set-up command.
const readme = readFileSync(path.join(repoRoot, "README.md"), "utf8");
const blocks = [...readme.matchAll(/```(\w+)\n([\s\S]*?)```/g)].map((m) => ({ lang: m[1]!, body: m[2]!, at: m.index }));
const setUpEnd = readme.indexOf("## 30-second example");
const work = mkdtempSync(path.join(os.tmpdir(), "lowrank-readme-"));
for (const name of ["node_modules", "models", "examples", "data"]) symlinkSync(path.join(repoRoot, name), path.join(work, name));
const env: NodeJS.ProcessEnv = { ...process.env, HF_HOME: path.join(work, "hf-home") };
for (const name of ["HF_ENDPOINT", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_CACHE", "HF_HUB_OFFLINE"]) delete env[name];
let background: ChildProcess | undefined;
/** `kill %1` in an interactive shell signals the job's whole process group (npx and the server it started). */
const killJob = (child: ChildProcess | undefined, signal: NodeJS.Signals): void => {
  if (child?.pid !== undefined && child.exitCode === null) process.kill(-child.pid, signal);
};
afterAll(() => {
  killJob(background, "SIGKILL");
  rmSync(work, { recursive: true, force: true });
});

/** The commands of a shell block: comments and blank lines dropped, `\` continuations joined. */
function commands(body: string): string[] {
  return body
    .replace(/\\\n\s*/g, "")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
}

async function startBackground(command: string): Promise<ChildProcess> {
  // A job of its own, as an interactive shell runs `command &`.
  const child = spawn("sh", ["-c", `exec ${command.replace(/&$/, "").trim()}`], { cwd: work, env, stdio: ["ignore", "pipe", "pipe"], detached: true });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${command}: printed nothing in 30 s`)), 30_000);
    child.stdout!.once("data", () => (clearTimeout(timer), resolve()));
    child.once("exit", (code) => (clearTimeout(timer), reject(new Error(`${command}: exited with ${code}`))));
  });
  return child;
}

describe("README.md", () => {
  test("the set-up commands are the ones CI and the demo test run", () => {
    const setUp = blocks.filter((b) => b.at! < setUpEnd && b.lang === "sh").map((b) => commands(b.body).join(" && "));
    expect(setUp).toEqual([
      "npx -y pnpm@12.4.2 install --frozen-lockfile && npx -y pnpm@12.4.2 build && npx -y pnpm@12.4.2 demo",
      "npx -y pnpm@12.4.2 install --frozen-lockfile && npx -y pnpm@12.4.2 test",
    ]);
    const ci = commands(
      readFileSync(path.join(repoRoot, ".ci", "run"), "utf8")
        .split("\n")
        .filter((l) => l.startsWith("npx"))
        .join("\n"),
    );
    expect(ci.join(" && ").replace(/ 2>&1 \| tee .*$/, "")).toBe(setUp[1]);
    const scripts = JSON.parse(readFileSync(path.join(repoRoot, "package.json"), "utf8")).scripts;
    expect(scripts.demo).toBe("node scripts/demo.mjs");
    expect(readFileSync(path.join(repoRoot, "test", "demo.test.ts"), "utf8")).toMatch(/"scripts", "demo\.mjs"/);
  });

  test("every command of the other shell blocks and the TypeScript example run as written", async () => {
    const shell = blocks.filter((b) => b.at! > setUpEnd && b.lang === "sh").flatMap((b) => commands(b.body));
    expect(shell.length).toBeGreaterThan(10);
    for (const command of shell) {
      if (command.endsWith("&")) {
        background = await startBackground(command);
        continue;
      }
      if (command === "kill %1") {
        const job = background!;
        const exited = new Promise((resolve) => job.once("exit", resolve));
        killJob(job, "SIGTERM");
        await exited;
        background = undefined;
        continue;
      }
      const run = spawnSync("sh", ["-c", command], { cwd: work, env, encoding: "utf8" });
      expect(run.status, `${command}\n${run.stderr}`).toBe(0);
    }
    for (const made of [
      "my-adapter/adapter_config.json",
      "merged/model.safetensors",
      "gpt2-mini.onnx",
      "logits.safetensors",
      "merged.onnx",
      "combined/adapter_model.safetensors",
      "similarity.svg",
    ]) {
      expect(existsSync(path.join(work, made)), made).toBe(true);
    }

    const [ts] = blocks.filter((b) => b.at! > setUpEnd && b.lang === "ts");
    expect(ts).toBeDefined();
    writeFileSync(path.join(work, "example.mjs"), ts!.body);
    const run = spawnSync(process.execPath, ["example.mjs"], { cwd: work, env, encoding: "utf8" });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/transformer\.h\.0\.attn\.c_attn r=8 scaling=2/);
    expect(existsSync(path.join(work, "merged-from-ts", "model.safetensors"))).toBe(true);
  }, 300_000);
});

mkdirSync(path.join(work, "hf-home"), { recursive: true });
