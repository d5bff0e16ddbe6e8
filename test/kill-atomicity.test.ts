import { spawn, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { createRepo } from "@huggingface/hub";
import { adapterKey, Checkpoint, createLoraConfig, describeModel, float32Tensor, resolveTargets, SeededRandom, writeAdapter, writeSafetensors, type Tensor } from "@lowrank/core";
import { lowrank, repoRoot, startHubServeProcess } from "./cli-helpers.js";
// @ts-expect-error plain ES module shared with the child processes
import { adapterVersion } from "./helpers/kill-fixtures.mjs";

// Every file lowrank writes goes to a temporary sibling, is fsynced and renamed into place. These
// tests kill writers with SIGKILL (no handler runs) at random moments and check that each target
// file is then the old complete file or the new complete one — never a torn one.
const tmp = mkdtempSync(path.join(os.tmpdir(), "lowrank-kill-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const TOKEN = "hf_lowrank_kill_test";
const ROUNDS = 5;
const bin = path.join(repoRoot, "packages", "cli", "dist", "bin.js");
const childScript = path.join(repoRoot, "test", "helpers", "kill-targets.mjs");
const sha = (bytes: Buffer): string => createHash("sha256").update(bytes).digest("hex");
const between = (min: number, max: number): number => min + Math.random() * (max - min);
const visibleFiles = (dir: string): string[] => readdirSync(dir).filter((n) => !n.startsWith(".")).sort();

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once("exit", () => resolve())));
}

async function killAfter(child: ChildProcess, ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
  child.kill("SIGKILL");
  await exited(child);
}

/**
 * Kills `child` a random few milliseconds after a temporary entry (a name starting with `prefix`)
 * appears in `dir`: a kill that surely lands while a file is half written.
 */
async function killMidWrite(child: ChildProcess, dir: string, prefix: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!(existsSync(dir) && readdirSync(dir).some((n) => n.startsWith(prefix)))) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`no temporary ${prefix}* appeared in ${dir}`);
    await new Promise((r) => setTimeout(r, 1));
  }
  await killAfter(child, between(0, 15));
}

/** Every visible file of `dir` equals the same-named file of one of the reference folders. */
function expectEachFileWhole(dir: string, references: string[]): void {
  for (const name of visibleFiles(dir)) {
    const got = sha(readFileSync(path.join(dir, name)));
    const known = references.filter((r) => existsSync(path.join(r, name))).map((r) => sha(readFileSync(path.join(r, name))));
    expect(known, `${name} is one of the complete versions`).toContain(got);
  }
}

describe("SIGKILL at a random moment leaves old or new complete files", () => {
  test("saving an adapter", async () => {
    const refs = [0, 1].map((k) => path.join(tmp, `adapter-ref-${k}`));
    for (const [k, dir] of refs.entries()) await writeAdapter(dir, adapterVersion(k));
    for (let round = 0; round < ROUNDS; round++) {
      const target = path.join(tmp, `adapter-${round}`);
      const child = spawn(process.execPath, [childScript, "adapter-loop", target], { stdio: ["ignore", "pipe", "inherit"] });
      await new Promise<void>((resolve) => child.stdout!.on("data", (d: Buffer) => d.toString().includes("ready") && resolve()));
      if (round % 2) await killMidWrite(child, tmp, `.adapter-${round}.partial-`);
      else await killAfter(child, between(0, 250));
      expect(visibleFiles(target)).toEqual(["adapter_config.json", "adapter_model.safetensors"]);
      expectEachFileWhole(target, refs);
    }
  }, 120_000);

  test("lowrank merge into an existing output", async () => {
    // A GPT-2-shaped base of 70 MB and two all-linear adapters, X and Y.
    const base = path.join(tmp, "merge-base");
    mkdirSync(base);
    const [h, layers, vocab] = [512, 4, 8192];
    const rng = new SeededRandom(3);
    const random = (n: number, s: number) => Float32Array.from({ length: n }, () => (rng.next() - 0.5) * s);
    const tensors = new Map<string, Tensor>([["transformer.wte.weight", float32Tensor(random(vocab * h, 0.04), [vocab, h])], ["transformer.wpe.weight", float32Tensor(random(256 * h, 0.02), [256, h])]]);
    for (let i = 0; i < layers; i++) {
      for (const [name, a, b] of [["attn.c_attn", h, 3 * h], ["attn.c_proj", h, h], ["mlp.c_fc", h, 4 * h], ["mlp.c_proj", 4 * h, h]] as const) {
        tensors.set(`transformer.h.${i}.${name}.weight`, float32Tensor(random(a * b, 0.04), [a, b]));
        tensors.set(`transformer.h.${i}.${name}.bias`, float32Tensor(new Float32Array(b), [b]));
      }
    }
    writeFileSync(path.join(base, "config.json"), JSON.stringify({ model_type: "gpt2", n_layer: layers, n_head: 8, n_embd: h, vocab_size: vocab, n_positions: 256 }));
    await writeSafetensors(path.join(base, "model.safetensors"), tensors, { format: "pt" });
    const checkpoint = await Checkpoint.open(base);
    const config = createLoraConfig({ r: 8, lora_alpha: 16, target_modules: "all-linear", fan_in_fan_out: true });
    const plans = resolveTargets(config, describeModel(checkpoint.config, checkpoint.tensorInfo())).targets;
    await checkpoint.close();
    const adapters = ["x", "y"].map((name) => {
      const dir = path.join(tmp, `merge-adapter-${name}`);
      return { dir, tensors: new Map(plans.flatMap((p) => [[adapterKey(p.name, "lora_A"), float32Tensor(random(p.r * p.inFeatures, 0.1), [p.r, p.inFeatures])], [adapterKey(p.name, "lora_B"), float32Tensor(random(p.outFeatures * p.r, 0.1), [p.outFeatures, p.r])]] as [string, Tensor][])) };
    });
    for (const a of adapters) await writeAdapter(a.dir, { config, tensors: a.tensors });
    const refs = adapters.map((a, i) => {
      const out = path.join(tmp, `merged-ref-${i}`);
      const run = lowrank(["merge", "--base", base, "--adapter", a.dir, "--out", out]);
      expect(run.status, run.stderr).toBe(0);
      return out;
    });
    expect(sha(readFileSync(path.join(refs[0], "model.safetensors")))).not.toBe(sha(readFileSync(path.join(refs[1], "model.safetensors"))));
    const out = path.join(tmp, "merged");
    expect(lowrank(["merge", "--base", base, "--adapter", adapters[1].dir, "--out", out]).status).toBe(0);
    for (let round = 0; round < ROUNDS; round++) {
      const child = spawn(process.execPath, [bin, "merge", "--base", base, "--adapter", adapters[round % 2].dir, "--out", out], { stdio: "ignore" });
      if (round % 2) await killMidWrite(child, tmp, ".merged.partial-");
      else await killAfter(child, between(300, 1500));
      expect(visibleFiles(out)).toEqual(["config.json", "model.safetensors"]);
      expectEachFileWhole(out, refs);
    }
  }, 180_000);

  test("lowrank pull of a large file, then a pull that completes", async () => {
    const server = await startHubServeProcess(path.join(tmp, "pull-storage"), TOKEN);
    try {
      const weights = randomBytes(48 << 20);
      await createRepo({ repo: "team/big", accessToken: TOKEN, hubUrl: server.url });
      const upload = spawn(process.execPath, [childScript, "upload", server.url, TOKEN, "team/big", writeTemp("big.bin", weights)], { stdio: "inherit" });
      await exited(upload);
      expect(upload.exitCode).toBe(0);
      const cache = path.join(tmp, "pull-cache");
      const env = { ...process.env, HF_HUB_CACHE: cache, HF_ENDPOINT: server.url, HF_TOKEN: TOKEN };
      for (let round = 0; round < ROUNDS; round++) {
        if (round === 1) rmSync(cache, { recursive: true, force: true });
        const child = spawn(process.execPath, [bin, "pull", "team/big"], { stdio: "ignore", env });
        const repoDir = path.join(cache, "models--team--big");
        const blobs = path.join(repoDir, "blobs");
        if (round === 1) {
          // Kill once while the blob is half downloaded (from an empty cache); later rounds resume it.
          const deadline = Date.now() + 30_000;
          while (!(existsSync(blobs) && readdirSync(blobs).some((n) => n.endsWith(".incomplete")))) {
            if (Date.now() > deadline || child.exitCode !== null) throw new Error("no .incomplete blob appeared");
            await new Promise((r) => setTimeout(r, 1));
          }
          await killAfter(child, between(0, 15));
        } else {
          await killAfter(child, between(300, 1500));
        }
        // A blob under its final name is complete (its name is its sha256); partial data stays in .incomplete.
        for (const name of existsSync(blobs) ? readdirSync(blobs) : []) {
          if (name.endsWith(".incomplete") || name.startsWith(".")) continue;
          if (name.length === 64) expect(sha(readFileSync(path.join(blobs, name))), name).toBe(name);
        }
        const snapshots = path.join(repoDir, "snapshots");
        for (const commit of existsSync(snapshots) ? readdirSync(snapshots) : []) {
          const file = path.join(snapshots, commit, "weights.bin");
          if (existsSync(file)) expect(sha(readFileSync(file))).toBe(sha(weights));
          else expect(existsSync(path.dirname(file)) ? lstatSync(path.dirname(file)).isDirectory() : true).toBe(true);
        }
      }
      const done = lowrank(["pull", "team/big"], { HF_HUB_CACHE: cache, HF_ENDPOINT: server.url, HF_TOKEN: TOKEN });
      expect(done.status, done.stderr).toBe(0);
      expect(sha(readFileSync(path.join(done.stdout.trim(), "weights.bin")))).toBe(sha(weights));
    } finally {
      await server.stop();
    }
  }, 180_000);

  test("the Hub server killed during a commit restarts with the old or the new file", async () => {
    const storage = path.join(tmp, "commit-storage");
    let server = await startHubServeProcess(storage, TOKEN);
    const versions = [randomBytes(24 << 20)];
    try {
      await createRepo({ repo: "team/c", accessToken: TOKEN, hubUrl: server.url });
      const first = spawn(process.execPath, [childScript, "upload", server.url, TOKEN, "team/c", writeTemp("v0.bin", versions[0])], { stdio: "inherit" });
      await exited(first);
      expect(first.exitCode).toBe(0);
      for (let round = 1; round <= ROUNDS; round++) {
        versions.push(randomBytes(24 << 20));
        const upload = spawn(process.execPath, [childScript, "upload", server.url, TOKEN, "team/c", writeTemp(`v${round}.bin`, versions[round])], { stdio: "ignore" });
        await new Promise((r) => setTimeout(r, between(100, 900)));
        await server.kill();
        await exited(upload);
        server = await startHubServeProcess(storage, TOKEN);
        const response = await fetch(`${server.url}/team/c/resolve/main/weights.bin`, { headers: { authorization: `Bearer ${TOKEN}` } });
        expect(response.status).toBe(200);
        const served = sha(Buffer.from(await response.arrayBuffer()));
        expect(versions.map((v) => sha(v)), `round ${round}`).toContain(served);
      }
    } finally {
      await server.stop();
    }
  }, 180_000);
});

function writeTemp(name: string, bytes: Buffer): string {
  const file = path.join(tmp, name);
  writeFileSync(file, bytes);
  return file;
}
