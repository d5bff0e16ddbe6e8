#!/usr/bin/env node
// Load benchmark of the self-hosted hub (`lowrank hub serve` / startHubServer), on loopback.
// Not run by the tests (their bounded version is packages/hub-server/src/hub-server-load.test.ts).
//
//   node bench/hub-load.mjs [--pushes 250] [--pulls 250] [--repos 5] [--concurrency 64]
//                           [--max-lfs-bytes 2000000] [--in-process] [--json <file>]
//
// Pushes (through @huggingface/hub: preupload, LFS batch, PUT, NDJSON commit) race on the same
// files of a few repos; pulls download files while they change (whole, ranged, and with lowrank's
// pullRepo into fresh caches). At the end it checks that no commit was lost (every push's commit is
// in its repo's history, and every commit holds the files of all pushes before it) and that no
// download was torn (every byte sequence served is one committed version, the one its ETag names).
// Exits 1 on any violation or failed operation. Needs `pnpm build` (it uses the packages' dist).
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { uploadFiles } from "@huggingface/hub";
import { pullRepo } from "@lowrank/hub";
import { startHubServer } from "@lowrank/hub-server";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const option = (name, fallback) => (args.includes(name) ? args[args.indexOf(name) + 1] : fallback);
const PUSHES = Number(option("--pushes", 250));
const PULLS = Number(option("--pulls", 250));
const REPO_COUNT = Number(option("--repos", 5));
const CONCURRENCY = Number(option("--concurrency", 64));
const MAX_LFS = Number(option("--max-lfs-bytes", 2_000_000));
const IN_PROCESS = args.includes("--in-process");
const JSON_OUT = option("--json", undefined);
const TOKEN = "hf_bench_hub_load_token";

const sha256 = (b) => createHash("sha256").update(b).digest("hex");
const gitOid = (b) => createHash("sha1").update(`blob ${b.byteLength}\0`).update(b).digest("hex");
const versions = new Map();
const version = (bytes) => (versions.set(sha256(bytes), bytes), bytes);
const violations = [];
const latencies = { push: [], download: [], ranged: [], pull: [] };

/** The server in a process of its own (the realistic setup), or in this one with --in-process. */
async function startServer(dir) {
  if (IN_PROCESS) return startHubServer({ dir, tokens: [TOKEN] });
  const code = `import { startHubServer } from "@lowrank/hub-server";
    const s = await startHubServer({ dir: ${JSON.stringify(dir)}, tokens: [${JSON.stringify(TOKEN)}] });
    console.log("URL " + s.url);
    process.on("SIGTERM", () => s.close().then(() => process.exit(0)));`;
  const child = spawn(process.execPath, ["--input-type=module", "-e", code], { cwd: root, stdio: ["ignore", "pipe", "inherit"] });
  const url = await new Promise((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      const m = /URL (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]);
    });
    child.on("exit", (status) => reject(new Error(`hub server exited with ${status}`)));
  });
  return {
    url,
    close: () =>
      new Promise((resolve) => {
        child.once("exit", resolve);
        child.kill("SIGTERM");
      }),
  };
}

async function timed(kind, fn) {
  const start = performance.now();
  const result = await fn();
  latencies[kind].push(performance.now() - start);
  return result;
}

async function main() {
  const dir = await mkdtemp(path.join(os.tmpdir(), "lowrank-hub-load-bench-"));
  const server = await startServer(path.join(dir, "storage"));
  const hubUrl = server.url;
  const headers = { Authorization: `Bearer ${TOKEN}` };
  const api = async (p) => {
    const res = await fetch(`${hubUrl}${p}`, { headers });
    if (res.status !== 200) throw new Error(`${p}: ${res.status}`);
    return res.json();
  };
  const push = (plan) =>
    uploadFiles({
      repo: plan.repo,
      accessToken: TOKEN,
      hubUrl,
      useXet: false,
      commitTitle: `push ${plan.id}`,
      files: Object.entries(plan.files).map(([p, bytes]) => ({ path: p, content: new Blob([bytes]) })),
    }).then((out) => out.commit.oid);

  async function download(repo, file, range) {
    const res = await fetch(`${hubUrl}/${repo}/resolve/main/${file}`, { headers: { ...headers, ...(range ? { Range: `bytes=${range}-` } : {}) } });
    if (res.status !== (range ? 206 : 200)) throw new Error(`${repo}/${file}: ${res.status}`);
    const body = Buffer.from(await res.arrayBuffer());
    const linked = res.headers.get("x-linked-etag")?.replace(/"/g, "");
    const etag = res.headers.get("etag").replace(/"/g, "");
    if (body.byteLength !== Number(res.headers.get("content-length"))) violations.push(`${repo}/${file}: body length differs from Content-Length`);
    if (range) {
      const whole = versions.get(linked ?? etag);
      if (!whole || Buffer.compare(body, whole.subarray(range)) !== 0)
        violations.push(`${repo}/${file}: ranged body is not the tail of version ${linked ?? etag}`);
      return;
    }
    if (!versions.has(sha256(body))) violations.push(`${repo}/${file}: served ${body.byteLength} bytes that are no committed version (torn)`);
    else if ((linked ?? etag) !== (linked ? sha256(body) : gitOid(body)))
      violations.push(`${repo}/${file}: ETag ${linked ?? etag} does not name the bytes served`);
  }

  async function pullAndCheck(repo, n) {
    const result = await pullRepo({ repo, config: { hubUrl, token: TOKEN, cacheDir: path.join(dir, `cache-${n}`), offline: false } });
    const listed = await api(`/api/models/${repo}/revision/${result.commit}?blobs=1`);
    for (const s of listed.siblings) {
      const bytes = await readFile(path.join(result.snapshotDir, s.rfilename));
      if ((s.lfs ? sha256(bytes) : gitOid(bytes)) !== (s.lfs ? s.lfs.sha256 : s.blobId))
        violations.push(`${repo}@${result.commit}: pulled ${s.rfilename} differs from the commit`);
    }
    await rm(path.join(dir, `cache-${n}`), { recursive: true, force: true });
  }

  const repos = Array.from({ length: REPO_COUNT }, (_, i) => `bench/repo-${i}`);
  for (const repo of repos) {
    await fetch(`${hubUrl}/api/repos/create`, { method: "POST", headers, body: JSON.stringify({ name: repo }) });
    await push({ id: -1, repo, files: { "hot.bin": version(randomBytes(MAX_LFS >> 1)), "config.json": version(Buffer.from(JSON.stringify({ seed: repo }))) } });
  }
  // Half of all pushes go to the first repo (maximum contention), the rest spread over the others.
  const plans = Array.from({ length: PUSHES }, (_, id) => ({
    id,
    repo: id % 2 === 0 || REPO_COUNT === 1 ? repos[0] : repos[1 + ((id >> 1) % (REPO_COUNT - 1))],
    files: {
      [`pushes/p${id}.txt`]: version(Buffer.from(`pushed by ${id}\n`)),
      "hot.bin": version(randomBytes(1 + Math.floor(Math.random() * MAX_LFS))),
      "config.json": version(Buffer.from(JSON.stringify({ pusher: id }))),
    },
  }));
  const commits = new Map();
  const failures = [];
  const ops = [
    ...plans.map((plan) => () => timed("push", () => push(plan)).then((oid) => void commits.set(plan.id, oid))),
    ...Array.from({ length: PULLS }, (_, n) => async () => {
      const repo = repos[n % repos.length];
      if (n % 10 === 0) return timed("pull", () => pullAndCheck(repo, n));
      for (const file of ["hot.bin", "config.json"]) await timed("download", () => download(repo, file));
      if (n % 3 === 0) await timed("ranged", () => download(repo, "hot.bin", 1 + n));
    }),
  ].sort(() => Math.random() - 0.5);

  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(CONCURRENCY, ops.length) }, async () => {
      while (next < ops.length) {
        const op = ops[next++];
        await op().catch((error) => failures.push(String(error?.message ?? error)));
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;

  // Verification: every commit kept, each holding the files of every push before it.
  for (const repo of repos) {
    const mine = plans.filter((p) => p.repo === repo);
    const history = await api(`/api/models/${repo}/commits/main?limit=1000`);
    const ids = new Set(history.map((h) => h.id));
    for (const plan of mine)
      if (commits.has(plan.id) && !ids.has(commits.get(plan.id))) violations.push(`${repo}: commit of push ${plan.id} is not in the history`);
    const pushed = mine.filter((p) => commits.has(p.id)).length;
    if (history.length !== 2 + pushed) violations.push(`${repo}: ${history.length} commits, expected ${2 + pushed}`);
    const byCommit = new Map(mine.map((p) => [commits.get(p.id), p]));
    const expected = new Map();
    for (const h of [...history].reverse()) {
      const plan = byCommit.get(h.id);
      if (!plan) continue;
      for (const [p, bytes] of Object.entries(plan.files)) expected.set(p, bytes);
      const listed = await api(`/api/models/${repo}/revision/${h.id}?blobs=1`);
      for (const [p, bytes] of expected) {
        const s = listed.siblings.find((x) => x.rfilename === p);
        if (!s || (s.lfs ? s.lfs.sha256 : s.blobId) !== (s.lfs ? sha256(bytes) : gitOid(bytes)))
          violations.push(`${repo}@${h.id}: ${p} is missing or not the version pushed last`);
      }
    }
  }
  const blobDir = path.join(dir, "storage", "blobs", "sha256");
  for (const name of await readdir(blobDir)) {
    if (!/^[0-9a-f]{64}$/.test(name)) violations.push(`blob store: leftover file ${name}`);
    else if (sha256(await readFile(path.join(blobDir, name))) !== name) violations.push(`blob store: ${name} does not hold its content`);
  }
  await server.close();
  await rm(dir, { recursive: true, force: true });

  const pct = (xs, p) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))] : 0);
  const summary = {
    pushes: PUSHES,
    pulls: PULLS,
    repos: REPO_COUNT,
    concurrency: CONCURRENCY,
    maxLfsBytes: MAX_LFS,
    server: IN_PROCESS ? "in-process" : "own process",
    seconds: Number(seconds.toFixed(2)),
    opsPerSecond: Number(((PUSHES + PULLS) / seconds).toFixed(1)),
    latencyMs: Object.fromEntries(
      Object.entries(latencies).map(([k, xs]) => [
        k,
        { n: xs.length, p50: Math.round(pct(xs, 0.5)), p95: Math.round(pct(xs, 0.95)), max: Math.round(pct(xs, 1)) },
      ]),
    ),
    failures,
    violations,
  };
  console.log(JSON.stringify(summary, null, 2));
  if (JSON_OUT) await writeFile(JSON_OUT, `${JSON.stringify(summary, null, 2)}\n`);
  const ok = failures.length === 0 && violations.length === 0;
  console.log(
    ok ? "hub load: OK — no commit lost, no torn file" : `hub load: FAILED — ${failures.length} failed operation(s), ${violations.length} violation(s)`,
  );
  process.exit(ok ? 0 : 1);
}

main().catch((error) => {
  console.error(`hub-load: ${error?.stack ?? error}`);
  process.exit(1);
});
