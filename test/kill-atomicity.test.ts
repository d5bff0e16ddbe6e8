import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createRepo, uploadFiles } from "@huggingface/hub";
import { Checkpoint, createLoraConfig, describeModel, float32Tensor, resolveTargets, writeAdapter, writeSafetensors, type Tensor } from "@lowrank/core";
import { adapterKey, SeededRandom, TEST_KILL_ENV } from "@lowrank/core/internal";
import { lowrank, repoRoot, startHubServeProcess } from "./cli-helpers.js";
// @ts-expect-error plain ES module shared with the child processes
import { adapterVersion } from "./helpers/kill-fixtures.mjs";

// Every file lowrank writes goes to a temporary sibling, is fsynced and renamed into place. These
// tests make writers SIGKILL themselves (no handler runs) at each step of a write, through the
// test-only LOWRANK_TEST_KILL_AT hook (packages/core/src/formats/test-kill-point.ts), and check
// exactly what is then on disk: the old complete files or the new complete ones, never a torn or
// half-written visible file, and for a first write that never finished, nothing at all.
const tmp = mkdtempSync(path.join(os.tmpdir(), "lowrank-kill-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const TOKEN = "hf_lowrank_kill_test";
const bin = path.join(repoRoot, "packages", "cli", "dist", "bin.js");
const childScript = path.join(repoRoot, "test", "helpers", "kill-targets.mjs");
const sha = (bytes: Buffer): string => createHash("sha256").update(bytes).digest("hex");
const fileSha = (file: string): string => sha(readFileSync(file));
const visible = (dir: string): string[] =>
  existsSync(dir)
    ? readdirSync(dir)
        .filter((n) => !n.startsWith("."))
        .sort()
    : [];
const exists = (file: string): boolean => Boolean(lstatSync(file, { throwIfNoEntry: false }));

/** Runs `node args` with the kill point set: it must die by SIGKILL (else the point was never reached). */
function runKilledAt(point: string, args: string[], env: Record<string, string> = {}): void {
  const run = spawnSync(process.execPath, args, { encoding: "utf8", cwd: repoRoot, env: { ...process.env, ...env, [TEST_KILL_ENV]: point } });
  expect(run.signal, `${point}: never reached (exit ${run.status}: ${run.stderr.trim().split("\n").at(-1)})`).toBe("SIGKILL");
}

/** `dir` holds exactly the files named in `expected`, each byte for byte the file it maps to. */
function expectFolder(dir: string, expected: Record<string, string>): void {
  expect(visible(dir)).toEqual(Object.keys(expected).sort());
  for (const [name, reference] of Object.entries(expected)) expect(fileSha(path.join(dir, name)), name).toBe(fileSha(reference));
}

describe("writeAdapter killed at each step", () => {
  const refs = [0, 1].map((k) => path.join(tmp, `adapter-ref-${k}`));
  beforeAll(async () => {
    for (const [k, dir] of refs.entries()) await writeAdapter(dir, adapterVersion(k));
  });
  /** Adapter version `config` for adapter_config.json and `weights` for the weights, from the references. */
  const adapterFiles = (config: number, weights: number) => ({
    "adapter_config.json": path.join(refs[config]!, "adapter_config.json"),
    "adapter_model.safetensors": path.join(refs[weights]!, "adapter_model.safetensors"),
  });

  // [kill point, the version already there ("none": a first write), [config, weights] versions after the kill, or "absent"]
  test.each([
    ["atomic-write:partial@/adapter_model.safetensors", "none", "absent"],
    ["atomic-write:synced@/adapter_model.safetensors", "none", "absent"],
    ["atomic-write:renamed@/adapter_config.json", "none", "absent"],
    ["atomic-dir:filled", "none", "absent"],
    ["atomic-dir:renamed", "none", [1, 1]],
    ["atomic-write:partial@/adapter_model.safetensors", 0, [0, 0]],
    ["atomic-write:synced@/adapter_model.safetensors", 0, [0, 0]],
    ["atomic-write:renamed@/adapter_config.json", 0, [0, 0]],
    ["atomic-dir:filled", 0, [0, 0]],
    // An existing folder is updated file by file, in name order: config first.
    ["atomic-dir:moved@/adapter_config.json", 0, [1, 0]],
    ["atomic-dir:moved@/adapter_model.safetensors", 0, [1, 1]],
  ] as const)("at %s over %s: %j", async (point, old, after) => {
    const parent = mkdtempSync(path.join(tmp, "adapter-"));
    const target = path.join(parent, "adapter");
    if (old !== "none") await writeAdapter(target, adapterVersion(old));
    runKilledAt(point, [childScript, "adapter", target, "1"]);
    if (after === "absent") {
      expect(visible(parent), "no folder, not a half one").toEqual([]);
    } else {
      expect(visible(parent)).toEqual(["adapter"]);
      expectFolder(target, adapterFiles(after[0], after[1]));
    }
    // The next write completes and removes what the killed one left.
    await writeAdapter(target, adapterVersion(1));
    expectFolder(target, adapterFiles(1, 1));
    expect(readdirSync(parent)).toEqual(["adapter"]);
  });
});

describe("lowrank merge killed at each step", () => {
  const base = path.join(tmp, "merge-base");
  const adapters = [0, 1].map((k) => path.join(tmp, `merge-adapter-${k}`));
  const refs = [0, 1].map((k) => path.join(tmp, `merged-ref-${k}`));
  beforeAll(async () => {
    // A small GPT-2-shaped base and two all-linear adapters.
    mkdirSync(base);
    const [h, layers, vocab] = [64, 2, 512];
    const rng = new SeededRandom(3);
    const random = (n: number, s: number) => Float32Array.from({ length: n }, () => (rng.next() - 0.5) * s);
    const tensors = new Map<string, Tensor>([
      ["transformer.wte.weight", float32Tensor(random(vocab * h, 0.04), [vocab, h])],
      ["transformer.wpe.weight", float32Tensor(random(64 * h, 0.02), [64, h])],
    ]);
    for (let i = 0; i < layers; i++) {
      for (const [name, a, b] of [
        ["attn.c_attn", h, 3 * h],
        ["attn.c_proj", h, h],
        ["mlp.c_fc", h, 4 * h],
        ["mlp.c_proj", 4 * h, h],
      ] as const) {
        tensors.set(`transformer.h.${i}.${name}.weight`, float32Tensor(random(a * b, 0.04), [a, b]));
        tensors.set(`transformer.h.${i}.${name}.bias`, float32Tensor(new Float32Array(b), [b]));
      }
    }
    writeFileSync(
      path.join(base, "config.json"),
      JSON.stringify({ model_type: "gpt2", n_layer: layers, n_head: 4, n_embd: h, vocab_size: vocab, n_positions: 64 }),
    );
    await writeSafetensors(path.join(base, "model.safetensors"), tensors, { format: "pt" });
    const checkpoint = await Checkpoint.open(base);
    const config = createLoraConfig({ r: 4, lora_alpha: 8, target_modules: "all-linear", fan_in_fan_out: true });
    const plans = resolveTargets(config, describeModel(checkpoint.config, checkpoint.tensorInfo())).targets;
    await checkpoint.close();
    for (const dir of adapters) {
      const factors = plans.flatMap(
        (p) =>
          [
            [adapterKey(p.name, "lora_A"), float32Tensor(random(p.r * p.inFeatures, 0.1), [p.r, p.inFeatures])],
            [adapterKey(p.name, "lora_B"), float32Tensor(random(p.outFeatures * p.r, 0.1), [p.outFeatures, p.r])],
          ] as [string, Tensor][],
      );
      await writeAdapter(dir, { config, tensors: new Map(factors) });
    }
    for (const [k, out] of refs.entries()) {
      const run = lowrank(["merge", "--base", base, "--adapter", adapters[k]!, "--out", out]);
      expect(run.status, run.stderr).toBe(0);
    }
    expect(fileSha(path.join(refs[0]!, "model.safetensors"))).not.toBe(fileSha(path.join(refs[1]!, "model.safetensors")));
  });
  const merged = (k: number) => ({ "config.json": path.join(base, "config.json"), "model.safetensors": path.join(refs[k]!, "model.safetensors") });

  // [kill point, the merge already there ("none": a first write), the merge there after the kill, or "absent"]
  test.each([
    ["atomic-write:partial@/model.safetensors", "none", "absent"],
    ["atomic-dir:filled", "none", "absent"],
    ["atomic-write:partial@/model.safetensors", 0, 0],
    ["atomic-write:synced@/model.safetensors", 0, 0],
    ["atomic-dir:filled", 0, 0],
    ["atomic-dir:moved@/config.json", 0, 0],
    ["atomic-dir:moved@/model.safetensors", 0, 1],
  ] as const)("at %s over %s: %s", (point, old, after) => {
    const parent = mkdtempSync(path.join(tmp, "merge-"));
    const out = path.join(parent, "merged");
    if (old !== "none") expect(lowrank(["merge", "--base", base, "--adapter", adapters[old]!, "--out", out]).status).toBe(0);
    runKilledAt(point, [bin, "merge", "--base", base, "--adapter", adapters[1]!, "--out", out]);
    if (after === "absent") {
      expect(visible(parent), "no folder, not a half one").toEqual([]);
    } else {
      expect(visible(parent)).toEqual(["merged"]);
      expectFolder(out, merged(after));
    }
  });
});

describe("a Hub server and `lowrank pull`", () => {
  const weights = randomBytes(6 << 20);
  const weightsSha = sha(weights);
  const storage = path.join(tmp, "hub-storage");
  let server: Awaited<ReturnType<typeof startHubServeProcess>>;
  beforeAll(async () => {
    server = await startHubServeProcess(storage, TOKEN);
    await createRepo({ repo: "team/big", accessToken: TOKEN, hubUrl: server.url });
    await uploadFiles({
      repo: "team/big",
      accessToken: TOKEN,
      hubUrl: server.url,
      useXet: false,
      files: [{ path: "weights.bin", content: new Blob([weights]) }],
    });
  });
  afterAll(() => server?.stop());

  // [kill point (on weights.bin's blob), what blobs/<sha256>.incomplete holds after it ("none", "part", "all"), whether blobs/<sha256> exists]
  test.each([
    ["hub-download:partial", "part", false],
    ["hub-download:synced", "all", false],
    ["hub-download:renamed", "none", true],
  ] as const)("pull killed at %s: .incomplete holds %s, blob under its name: %s; the next pull completes", (point, incomplete, blob) => {
    const cache = path.join(tmp, `pull-cache-${point.replace(":", "-")}`);
    const env = { HF_HUB_CACHE: cache, HF_ENDPOINT: server.url, HF_TOKEN: TOKEN };
    runKilledAt(`${point}@/${weightsSha}`, [bin, "pull", "team/big"], env);
    const repoDir = path.join(cache, "models--team--big");
    const blobPath = path.join(repoDir, "blobs", weightsSha);
    const partial = `${blobPath}.incomplete`;
    expect(exists(blobPath), "blobs/<sha256> exists (only a complete, checked download may take that name)").toBe(blob);
    if (blob) expect(fileSha(blobPath)).toBe(weightsSha);
    if (incomplete === "none") {
      expect(exists(partial)).toBe(false);
    } else {
      const got = readFileSync(partial);
      expect(
        got.byteLength > 0 && (incomplete === "all" ? got.byteLength === weights.byteLength : got.byteLength < weights.byteLength),
        `${got.byteLength} bytes`,
      ).toBe(true);
      expect(Buffer.compare(got, weights.subarray(0, got.byteLength)), "a prefix of the file").toBe(0);
    }
    // Nothing links to the blob yet and no ref says the snapshot is there.
    const snapshots = path.join(repoDir, "snapshots");
    for (const commit of visible(snapshots)) expect(exists(path.join(snapshots, commit, "weights.bin")), commit).toBe(false);
    expect(exists(path.join(repoDir, "refs", "main"))).toBe(false);

    const done = lowrank(["pull", "team/big"], env);
    expect(done.status, done.stderr).toBe(0);
    expect(fileSha(path.join(done.stdout.trim(), "weights.bin"))).toBe(weightsSha);
    expect(readdirSync(path.join(repoDir, "blobs")).filter((n) => n.endsWith(".incomplete"))).toEqual([]);
  });

  test("the server killed at each step of a commit restarts serving the old or the new file", async () => {
    await createRepo({ repo: "team/c", accessToken: TOKEN, hubUrl: server.url });
    const versions = [randomBytes(1 << 20)];
    const commit = (url: string, bytes: Buffer) =>
      uploadFiles({
        repo: "team/c",
        accessToken: TOKEN,
        hubUrl: url,
        useXet: false,
        files: [{ path: "weights.bin", content: new Blob([new Uint8Array(bytes)]) }],
      });
    const commits = async (url: string) =>
      ((await (await fetch(`${url}/api/models/team/c/commits/main`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as unknown[]).length;
    await commit(server.url, versions[0]!);
    let history = await commits(server.url);
    let served = 0;
    await server.stop();
    // [kill point, whether the commit is there after a restart]
    for (const [point, committed] of [
      ["hub-commit:applied", false],
      ["hub-server:renamed@/commits/", false],
      ["atomic-write:partial@/refs/main", false],
      ["atomic-write:synced@/refs/main", false],
      ["hub-server:renamed@/refs/main", true],
    ] as const) {
      const dying = await startHubServeProcess(storage, TOKEN, { [TEST_KILL_ENV]: point });
      versions.push(randomBytes(1 << 20));
      await commit(dying.url, versions.at(-1)!).catch(() => undefined);
      expect(await dying.exited, `${point}: never reached`).toBe("SIGKILL");
      server = await startHubServeProcess(storage, TOKEN);
      if (committed) [served, history] = [versions.length - 1, history + 1];
      const response = await fetch(`${server.url}/team/c/resolve/main/weights.bin`, { headers: { authorization: `Bearer ${TOKEN}` } });
      expect(response.status, point).toBe(200);
      expect(sha(Buffer.from(await response.arrayBuffer())), `${point}: serves version ${served}`).toBe(sha(versions[served]!));
      expect(await commits(server.url), `${point}: commits on main`).toBe(history);
      // No half-written ref or commit is visible: the ref is one commit id, every commit file whole JSON.
      const repoDir = path.join(storage, "repos", "models", "team", "c");
      expect(visible(path.join(repoDir, "refs")), point).toEqual(["main"]);
      expect(readFileSync(path.join(repoDir, "refs", "main"), "utf8")).toMatch(/^[0-9a-f]{40}\n$/);
      for (const name of visible(path.join(repoDir, "commits")))
        expect(() => JSON.parse(readFileSync(path.join(repoDir, "commits", name), "utf8")), name).not.toThrow();
      await server.stop();
    }
    // And the restarted server takes the next commit.
    server = await startHubServeProcess(storage, TOKEN);
    versions.push(randomBytes(1 << 20));
    await commit(server.url, versions.at(-1)!);
    const response = await fetch(`${server.url}/team/c/resolve/main/weights.bin`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(sha(Buffer.from(await response.arrayBuffer()))).toBe(sha(versions.at(-1)!));
    expect(statSync(path.join(storage, "blobs", "sha256", sha(versions.at(-1)!))).size).toBe(1 << 20);
  });
});
