import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { lstatSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, existsSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createRepo, downloadFile, snapshotDownload, uploadFiles } from "@huggingface/hub";
import { requireFixture } from "@lowrank/core/testing";
import { lowrank, repoRoot, startHubServeProcess } from "./cli-helpers.js";

const TOKEN = "hf_lowrank_test_token_5f2c";
const tmp = mkdtempSync(path.join(os.tmpdir(), "lowrank-hub-"));
// The registry runs as `lowrank hub serve` in a process of its own (the CLI runs synchronously in
// these tests, so an in-process server could not answer it).
let server: { url: string; stop: () => Promise<void> };
beforeAll(async () => {
  server = await startHubServeProcess(path.join(tmp, "storage"), TOKEN);
});
afterAll(async () => {
  await server?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const gitSha1 = (b: Buffer) => createHash("sha1").update(`blob ${b.length}\0`).update(b).digest("hex");
const hub = (cache: string, extra: Record<string, string> = {}) => ({ HF_HUB_CACHE: cache, HF_ENDPOINT: server.url, ...extra });
const withToken = (args: string[]) => ["--token", TOKEN, ...args];

describe("push and pull through the self-hosted Hub", () => {
  const cache = path.join(tmp, "cache");

  test("lowrank push then lowrank pull gives byte-identical files in Python's cache layout", () => {
    const push = lowrank(withToken(["push", requireFixture("gpt2-tiny-lora"), "--repo", "team/gpt2-adapter"]), hub(cache));
    expect(push.status, push.stderr).toBe(0);
    expect(push.stdout.trim()).toMatch(new RegExp(`^${server.url}/team/gpt2-adapter/commit/[0-9a-f]{40}$`));
    const pull = lowrank(["pull", "team/gpt2-adapter"], hub(cache));
    expect(pull.status, pull.stderr).toBe(0);
    const snapshot = pull.stdout.trim();
    const repoFolder = path.join(cache, "models--team--gpt2-adapter");
    const commit = readFileSync(path.join(repoFolder, "refs", "main"), "utf8");
    expect(commit).toMatch(/^[0-9a-f]{40}$/);
    expect(snapshot).toBe(path.join(repoFolder, "snapshots", commit));
    for (const file of ["adapter_config.json", "adapter_model.safetensors"]) {
      const original = readFileSync(requireFixture("gpt2-tiny-lora", file));
      expect(Buffer.compare(readFileSync(path.join(snapshot, file)), original)).toBe(0);
      // Python's layout: a relative symlink into blobs/, the blob named by its etag.
      const link = path.join(snapshot, file);
      expect(lstatSync(link).isSymbolicLink()).toBe(true);
      const etag = file.endsWith(".safetensors") ? sha256(original) : gitSha1(original);
      expect(readlinkSync(link)).toBe(`../../blobs/${etag}`);
    }
    const card = readFileSync(path.join(snapshot, "README.md"), "utf8");
    expect(card).toMatch(/^---\nlibrary_name: peft\nbase_model: gpt2-tiny\npipeline_tag: text-generation\ntags:\n- peft\n- lora\n/);
    expect(readdirSync(path.join(repoFolder, "blobs")).every((b) => /^[0-9a-f]{40}([0-9a-f]{24})?$/.test(b))).toBe(true);
  });

  test("a second commit moves main; the old revision still resolves", () => {
    const first = readFileSync(path.join(cache, "models--team--gpt2-adapter", "refs", "main"), "utf8");
    const push = lowrank(withToken(["push", requireFixture("gpt2-tiny-dora"), "--repo", "team/gpt2-adapter", "--message", "DoRA instead"]), hub(cache));
    expect(push.status, push.stderr).toBe(0);
    const latest = lowrank(["pull", "team/gpt2-adapter"], hub(cache));
    const second = readFileSync(path.join(cache, "models--team--gpt2-adapter", "refs", "main"), "utf8");
    expect(second).not.toBe(first);
    expect(readFileSync(path.join(latest.stdout.trim(), "adapter_config.json"), "utf8")).toContain('"use_dora": true');
    const old = lowrank(["pull", "team/gpt2-adapter", "--revision", first], hub(path.join(tmp, "cache-old")));
    expect(old.status, old.stderr).toBe(0);
    expect(readFileSync(path.join(old.stdout.trim(), "adapter_config.json"), "utf8")).toContain('"use_dora": false');
  });

  test("a Hub id works wherever an adapter is accepted", () => {
    const run = lowrank(["inspect", "team/gpt2-adapter", "--json"], hub(path.join(tmp, "cache-inspect")));
    expect(run.status, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout).config.use_dora).toBe(true);
  });

  test("offline mode answers from the cache alone", () => {
    const run = lowrank(["pull", "team/gpt2-adapter"], hub(cache, { HF_HUB_OFFLINE: "1", HF_ENDPOINT: "http://127.0.0.1:9" }));
    expect(run.status, run.stderr).toBe(0);
    const missing = lowrank(["pull", "team/never"], hub(cache, { HF_HUB_OFFLINE: "1" }));
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/team\/never@main is not in the cache .* and HF_HUB_OFFLINE is set/);
  });
});

describe("errors say what is wrong, in one line, without the token", () => {
  test("a private repo needs a token; a wrong token is refused", () => {
    const push = lowrank(withToken(["push", requireFixture("llama-tiny-lora"), "--repo", "team/private-adapter", "--private"]), hub(path.join(tmp, "c1")));
    expect(push.status, push.stderr).toBe(0);
    const anonymous = lowrank(["pull", "team/private-adapter"], hub(path.join(tmp, "c2")));
    expect(anonymous.status).toBe(2);
    expect(anonymous.stderr).toMatch(/^lowrank: error: team\/private-adapter@main: 401 unauthorized: it needs a token \(--token \/ HF_TOKEN\)/);
    const wrong = lowrank(
      ["--token", "hf_wrong_secret_value", "push", requireFixture("llama-tiny-lora"), "--repo", "team/private-adapter"],
      hub(path.join(tmp, "c3")),
    );
    expect(wrong.status).toBe(2);
    expect(wrong.stderr).toMatch(/401 unauthorized: the token \(--token \/ HF_TOKEN\) has no access/);
    expect(wrong.stderr).not.toContain("hf_wrong_secret_value");
    const allowed = lowrank(withToken(["pull", "team/private-adapter"]), hub(path.join(tmp, "c4")));
    expect(allowed.status, allowed.stderr).toBe(0);
  });

  test("a missing repo, revision or file is a 404 that says which", async () => {
    const repo = lowrank(["pull", "team/does-not-exist"], hub(path.join(tmp, "c5")));
    expect(repo.status).toBe(2);
    expect(repo.stderr).toMatch(/team\/does-not-exist@main: 404 repository not found/);
    const revision = lowrank(["pull", "team/gpt2-adapter", "--revision", "no-such-branch"], hub(path.join(tmp, "c6")));
    expect(revision.stderr).toMatch(/404 revision not found/);
    const file = await fetch(`${server.url}/team/gpt2-adapter/resolve/main/nope.bin`);
    expect(file.status).toBe(404);
    expect(file.headers.get("x-error-code")).toBe("EntryNotFound");
  });

  test("an adapter folder that is not valid is refused before anything is uploaded", () => {
    const run = lowrank(withToken(["push", requireFixture("gpt2-tiny"), "--repo", "team/bad"]), hub(path.join(tmp, "c7")));
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/has no adapter_config\.json/);
    return fetch(`${server.url}/api/models/team/bad`).then((r) => expect(r.status).toBe(404));
  });
});

describe("downloads", () => {
  test("a download cut in the middle resumes", async () => {
    // A proxy that breaks off the first transfer of the safetensors file half-way.
    let cuts = 0;
    const ranges: string[] = [];
    const upstream = new URL(server.url);
    const proxy = http.createServer((req, res) => {
      if (req.headers.range) ranges.push(req.headers.range);
      const forward = http.request({ host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers: req.headers }, (answer) => {
        res.writeHead(answer.statusCode ?? 500, answer.headers);
        const cut = req.method === "GET" && req.url?.endsWith("adapter_model.safetensors") && cuts === 0;
        if (!cut) return void answer.pipe(res);
        cuts += 1;
        let sent = 0;
        answer.on("data", (chunk: Buffer) => {
          if (sent > 8000) return;
          sent += chunk.length;
          res.write(chunk.subarray(0, Math.min(chunk.length, 9000)));
          if (sent > 8000) setTimeout(() => res.socket?.destroy(), 20);
        });
      });
      req.pipe(forward);
    });
    await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
    const proxyUrl = `http://127.0.0.1:${(proxy.address() as { port: number }).port}`;
    try {
      const cache = path.join(tmp, "cache-resume");
      const run = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, [path.join(repoRoot, "packages/cli/dist/bin.js"), "pull", "team/private-adapter", "--token", TOKEN], {
          env: { ...process.env, HF_HUB_CACHE: cache, HF_ENDPOINT: proxyUrl },
        });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (d) => (stdout += d));
        child.stderr.on("data", (d) => (stderr += d));
        child.on("close", (status) => resolve({ status, stdout, stderr }));
      });
      expect(run.status, run.stderr).toBe(0);
      expect(cuts).toBe(1);
      expect(ranges.some((r) => /^bytes=[1-9]\d*-$/.test(r))).toBe(true);
      const original = readFileSync(requireFixture("llama-tiny-lora", "adapter_model.safetensors"));
      expect(Buffer.compare(readFileSync(path.join(run.stdout.trim(), "adapter_model.safetensors")), original)).toBe(0);
      expect(readdirSync(path.join(cache, "models--team--private-adapter", "blobs")).some((f) => f.endsWith(".incomplete"))).toBe(false);
    } finally {
      proxy.close();
    }
  });

  test("two processes pulling the same files at once both succeed, with one intact copy", async () => {
    const cache = path.join(tmp, "cache-race");
    const pullOnce = () =>
      new Promise<number | null>((resolve) => {
        const child = spawn(process.execPath, [path.join(repoRoot, "packages/cli/dist/bin.js"), "pull", "team/gpt2-adapter"], {
          env: { ...process.env, HF_HUB_CACHE: cache, HF_ENDPOINT: server.url },
          stdio: "ignore",
        });
        child.on("close", resolve);
      });
    expect(await Promise.all([pullOnce(), pullOnce()])).toEqual([0, 0]);
    const blobs = readdirSync(path.join(cache, "models--team--gpt2-adapter", "blobs"));
    expect(blobs.filter((b) => b.includes(".incomplete"))).toEqual([]);
    const dora = readFileSync(requireFixture("gpt2-tiny-dora", "adapter_model.safetensors"));
    expect(Buffer.compare(readFileSync(path.join(cache, "models--team--gpt2-adapter", "blobs", sha256(dora))), dora)).toBe(0);
    expect(existsSync(path.join(cache, ".locks"))).toBe(true);
  });
});

describe("the plain @huggingface/hub functions against the server", () => {
  test("createRepo, uploadFiles, downloadFile and snapshotDownload", async () => {
    const repo = "team/js-client";
    await createRepo({ repo, accessToken: TOKEN, hubUrl: server.url });
    const weights = readFileSync(requireFixture("roberta-tiny-lora", "adapter_model.safetensors"));
    await uploadFiles({
      repo,
      accessToken: TOKEN,
      hubUrl: server.url,
      useXet: false,
      files: [
        { path: "adapter_config.json", content: new Blob([readFileSync(requireFixture("roberta-tiny-lora", "adapter_config.json"))]) },
        { path: "adapter_model.safetensors", content: new Blob([weights]) },
      ],
    } as Parameters<typeof uploadFiles>[0]);
    const blob = await downloadFile({ repo, path: "adapter_model.safetensors", hubUrl: server.url, accessToken: TOKEN });
    expect(Buffer.compare(Buffer.from(await blob!.arrayBuffer()), weights)).toBe(0);
    const cacheDir = path.join(tmp, "cache-js");
    const snapshot = await snapshotDownload({ repo, hubUrl: server.url, accessToken: TOKEN, cacheDir });
    expect(Buffer.compare(readFileSync(path.join(snapshot, "adapter_model.safetensors")), weights)).toBe(0);
    // lowrank reads what the JS client cached, and the other way round: one cache.
    const run = lowrank(["pull", repo, "--token", TOKEN], { HF_HUB_CACHE: cacheDir, HF_ENDPOINT: server.url });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout.trim()).toBe(snapshot);
  });

  test("plain HTTP as the Python client sends it", async () => {
    const info = await fetch(`${server.url}/api/models/team/gpt2-adapter/revision/main`);
    expect(info.status).toBe(200);
    const body = (await info.json()) as { sha: string; siblings: { rfilename: string }[] };
    expect(body.sha).toMatch(/^[0-9a-f]{40}$/);
    expect(body.siblings.map((s) => s.rfilename)).toEqual(expect.arrayContaining(["adapter_config.json", "adapter_model.safetensors", "README.md"]));
    const head = await fetch(`${server.url}/team/gpt2-adapter/resolve/main/adapter_model.safetensors`, {
      method: "HEAD",
      headers: { "Accept-Encoding": "identity" },
    });
    expect(head.status).toBe(200);
    expect(head.headers.get("x-repo-commit")).toBe(body.sha);
    expect(head.headers.get("x-linked-etag")).toMatch(/^"[0-9a-f]{64}"$/);
    expect(head.headers.get("etag")).toMatch(/^"[0-9a-f]{40,64}"$/);
    expect(Number(head.headers.get("x-linked-size") ?? head.headers.get("content-length"))).toBeGreaterThan(1000);
  });
});
