// A bounded load test on loopback, in rounds: each round is 50 concurrent operations, half pushes
// (commits to one shared repo and to two others, through @huggingface/hub) and half pulls (plain and
// ranged downloads, and lowrank's own pullRepo into fresh caches). Every answer must be a version
// committed to that repo and path, no commit may be lost, and what the server holds between rounds
// (open files, sockets, heap) must not grow with the number of rounds. No wall-clock bound: a busy
// machine is slow, not wrong. The bigger version is bench/hub-load.mjs (not run by the tests).
import { createHash, randomBytes } from "node:crypto";
import { existsSync, readdirSync, readlinkSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { uploadFiles } from "@huggingface/hub";
import { afterAll, beforeAll, expect, test } from "vitest";
import { pullRepo } from "@lowrank/hub";
import { startHubServer, type HubServer } from "./start-hub-server.js";

const accessToken = "hf_load_test_token";
const REPOS = ["load/shared", "load/a", "load/b"];
const PUSHES = 25;
const PULLS = 25;
const ROUNDS = 4;
/** Heap growth allowed from the first round to the last (caches filling up, the test's own records). */
const HEAP_GROWTH_LIMIT = 4 * 2 ** 20;

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const gitOid = (b: Uint8Array) => createHash("sha1").update(`blob ${b.byteLength}\0`).update(b).digest("hex");

/** Every version of each repo's file that anyone committed (or is committing): "repo:path" → sha256 → content. */
const versions = new Map<string, Map<string, Buffer>>();
function version(repo: string, file: string, bytes: Buffer): Buffer {
  const key = `${repo}:${file}`;
  if (!versions.has(key)) versions.set(key, new Map());
  versions.get(key)!.set(sha256(bytes), bytes);
  return bytes;
}

interface PushPlan {
  id: number;
  repo: string;
  files: Record<string, Buffer>;
}

let dir: string;
let server: HubServer;
let hubUrl: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "lowrank-hub-load-"));
  server = await startHubServer({ dir, tokens: [accessToken] });
  hubUrl = server.url;
});
afterAll(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

function push(plan: PushPlan): Promise<string> {
  return uploadFiles({
    repo: plan.repo,
    accessToken,
    hubUrl,
    useXet: false,
    commitTitle: `push ${plan.id}`,
    files: Object.entries(plan.files).map(([p, bytes]) => ({ path: p, content: new Blob([new Uint8Array(bytes)]) })),
  } as Parameters<typeof uploadFiles>[0]).then((out) => out!.commit.oid);
}

async function api<T>(p: string): Promise<T> {
  const res = await fetch(`${hubUrl}${p}`, { headers: { Authorization: `Bearer ${accessToken}` } });
  expect(res.status, p).toBe(200);
  return (await res.json()) as T;
}

interface Sibling {
  rfilename: string;
  size: number;
  blobId: string;
  lfs?: { sha256: string };
}
const tree = async (repo: string, rev: string) => await api<{ sha: string; siblings: Sibling[] }>(`/api/models/${repo}/revision/${rev}?blobs=1`);

/** Downloads a file and checks it is a version committed to this repo and path, whole, and the one its ETag names. */
async function download(repo: string, file: string, range?: number): Promise<void> {
  const res = await fetch(`${hubUrl}/${repo}/resolve/main/${file}`, {
    headers: { Authorization: `Bearer ${accessToken}`, ...(range ? { Range: `bytes=${range}-` } : {}) },
  });
  expect(res.status).toBe(range ? 206 : 200);
  const body = Buffer.from(await res.arrayBuffer());
  expect(body.byteLength).toBe(Number(res.headers.get("content-length")));
  const linked = res.headers.get("x-linked-etag")?.replace(/"/g, "");
  const etag = res.headers.get("etag")!.replace(/"/g, "");
  const committed = versions.get(`${repo}:${file}`)!;
  if (range) {
    // A ranged answer is the tail of the version its ETag names (LFS files: the sha256).
    const whole = linked ? committed.get(linked) : [...committed.values()].find((v) => gitOid(v) === etag);
    expect(whole, `${repo}/${file}: the ETag ${etag} names no version committed there`).toBeDefined();
    expect(Buffer.compare(body, whole!.subarray(range)), `${repo}/${file}: bytes ${range}-`).toBe(0);
    return;
  }
  expect(committed.has(sha256(body)), `${repo}/${file}: served ${body.byteLength} bytes that are no version committed there (torn?)`).toBe(true);
  expect(linked ?? etag).toBe(linked ? sha256(body) : gitOid(body));
}

/** lowrank's pull into a fresh cache: every file is exactly the version the pulled commit holds. */
async function pullAndCheck(repo: string, n: number): Promise<void> {
  const cacheDir = path.join(dir, `cache-${n}`);
  const result = await pullRepo({ repo, config: { hubUrl, token: accessToken, cacheDir, offline: false } });
  const listed = await tree(repo, result.commit);
  expect(result.files.sort()).toEqual(listed.siblings.map((s) => s.rfilename).sort());
  for (const s of listed.siblings) {
    const bytes = await readFile(path.join(result.snapshotDir, s.rfilename));
    expect(bytes.byteLength, s.rfilename).toBe(s.size);
    expect(s.lfs ? sha256(bytes) : gitOid(bytes), `${repo}@${result.commit}: ${s.rfilename}`).toBe(s.lfs ? s.lfs.sha256 : s.blobId);
  }
  await rm(cacheDir, { recursive: true, force: true });
}

/** One round: 25 pushes and 25 pulls at once, interleaved by small delays; returns the failures. */
async function runRound(round: number, plans: PushPlan[], commits: Map<number, string>): Promise<string[]> {
  const failures: string[] = [];
  const ops: Array<() => Promise<void>> = [
    ...plans.map((plan) => async () => {
      commits.set(plan.id, await push(plan));
    }),
    ...Array.from({ length: PULLS }, (_, n) => async () => {
      const repo = REPOS[n % REPOS.length]!;
      if (n % 5 === 0) return pullAndCheck(repo, round * PULLS + n);
      for (const file of ["hot.bin", "config.json", "notes.txt"]) await download(repo, file);
      if (n % 2 === 1) await download(repo, "hot.bin", 1 + n * 101);
    }),
  ];
  await Promise.all(
    ops.map((op, i) =>
      new Promise<void>((resolve) => setTimeout(resolve, (i * 37) % 60)).then(op).catch(
        (error: unknown) =>
          void failures.push(
            String((error as Error)?.stack ?? error)
              .split("\n")
              .slice(0, 3)
              .join(" | "),
          ),
      ),
    ),
  );
  return failures;
}

/** The pushes of one round: half to one repo (same files, racing), the others to two more repos. */
function pushPlans(round: number): PushPlan[] {
  return Array.from({ length: PUSHES }, (_, n) => {
    const id = round * PUSHES + n;
    const repo = n % 2 === 0 ? REPOS[0]! : REPOS[1 + ((n >> 1) % 2)]!;
    return {
      id,
      repo,
      files: {
        [`pushes/p${id}.txt`]: version(repo, `pushes/p${id}.txt`, Buffer.from(`pushed by ${id}\n`)),
        "hot.bin": version(repo, "hot.bin", randomBytes(50_000 + 7_919 * n)),
        "config.json": version(repo, "config.json", Buffer.from(JSON.stringify({ pusher: id, pad: "x".repeat(n * 97) }))),
      },
    };
  });
}

interface Held {
  /** Open files under the storage folder (none may stay open once every request is answered). */
  storageFiles: string[];
  sockets: number;
  heapBytes: number;
}

/**
 * What this process (server and clients) holds once a round is over: open files and sockets as
 * they are (a garbage collection would close leaked file handles), then the heap after a full
 * garbage collection.
 */
function held(): Held {
  const links = existsSync("/proc/self/fd")
    ? readdirSync("/proc/self/fd").map((fd) => {
        try {
          return readlinkSync(`/proc/self/fd/${fd}`);
        } catch {
          return "";
        }
      })
    : [];
  setFlagsFromString("--expose-gc");
  (runInNewContext("gc") as () => void)();
  return {
    storageFiles: links.filter((l) => l.startsWith(dir)),
    sockets: links.filter((l) => l.startsWith("socket:")).length,
    heapBytes: process.memoryUsage().heapUsed,
  };
}

test(`${ROUNDS} rounds of 50 concurrent pulls and pushes: every answer right, no commit lost, nothing held grows`, async () => {
  // Seed: every repo starts with an LFS file, a regular file and a notes file.
  for (const repo of REPOS) {
    await fetch(`${hubUrl}/api/repos/create`, { method: "POST", headers: { Authorization: `Bearer ${accessToken}` }, body: JSON.stringify({ name: repo }) });
    const seed = { "hot.bin": randomBytes(200_000), "config.json": Buffer.from(JSON.stringify({ seed: repo })), "notes.txt": Buffer.from("seed\n") };
    await push({ id: -1, repo, files: Object.fromEntries(Object.entries(seed).map(([p, bytes]) => [p, version(repo, p, bytes)])) });
  }
  const plans: PushPlan[] = [];
  const commits = new Map<number, string>();
  const samples: Held[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const mine = pushPlans(round);
    plans.push(...mine);
    expect(await runRound(round, mine, commits), `round ${round}`).toEqual([]);
    expect(commits.size).toBe(plans.length);
    samples.push(held());
  }

  // Between rounds nothing under the storage folder is open, sockets stay within what 50 concurrent
  // operations need (client and server ends, a few requests each), and the heap does not grow by
  // round: a leaked request, file handle or cache entry per operation would show in each.
  for (const [round, s] of samples.entries()) {
    expect(s.storageFiles, `round ${round}: files left open`).toEqual([]);
    expect(s.sockets, `round ${round}: open sockets`).toBeLessThanOrEqual(4 * (PUSHES + PULLS));
  }
  const growth = samples.at(-1)!.heapBytes - samples[0]!.heapBytes;
  expect(growth, `heap grew by ${(growth / 2 ** 20).toFixed(1)} MB over ${ROUNDS - 1} rounds`).toBeLessThan(HEAP_GROWTH_LIMIT);

  for (const repo of REPOS) {
    const mine = plans.filter((p) => p.repo === repo);
    // History: initial commit, seed, and every push, each exactly once, in one linear chain.
    const history = await api<Array<{ id: string; title: string }>>(`/api/models/${repo}/commits/main?limit=1000`);
    expect(history.length, repo).toBe(2 + mine.length);
    expect(new Set(history.map((h) => h.id)).size).toBe(history.length);
    for (const plan of mine)
      expect(
        history.map((h) => h.id),
        `${repo}: push ${plan.id}`,
      ).toContain(commits.get(plan.id));
    // Walking the chain from the oldest: each push's commit holds its own files exactly and every
    // file of the pushes before it (a lost update would drop one).
    const byCommit = new Map(mine.map((p) => [commits.get(p.id)!, p]));
    const expected = new Map<string, string>();
    for (const h of [...history].reverse()) {
      const plan = byCommit.get(h.id);
      if (!plan) continue;
      for (const [p, bytes] of Object.entries(plan.files)) expected.set(p, sha256(bytes));
      const listed = await tree(repo, h.id);
      for (const [p, sha] of expected) {
        const s = listed.siblings.find((x) => x.rfilename === p);
        expect(s, `${repo}@${h.id}: ${p}`).toBeDefined();
        const content = versions.get(`${repo}:${p}`)!.get(sha)!;
        expect(s!.lfs ? s!.lfs.sha256 : s!.blobId, `${repo}@${h.id}: ${p}`).toBe(s!.lfs ? sha : gitOid(content));
      }
    }
    // And main's files are those of the newest push, served whole.
    const head = history[0]!.id;
    expect(byCommit.has(head)).toBe(true);
    for (const [p, bytes] of Object.entries(byCommit.get(head)!.files)) {
      const res = await fetch(`${hubUrl}/${repo}/resolve/main/${p}`, { headers: { Authorization: `Bearer ${accessToken}` } });
      expect(Buffer.compare(Buffer.from(await res.arrayBuffer()), bytes), `${repo}: ${p}`).toBe(0);
    }
  }

  // On disk: no temporary file left behind, and every blob holds exactly the content its name says.
  const blobDir = path.join(dir, "blobs", "sha256");
  const names = await readdir(blobDir);
  expect(names.filter((n) => !/^[0-9a-f]{64}$/.test(n))).toEqual([]);
  for (const name of names) expect(sha256(await readFile(path.join(blobDir, name)))).toBe(name);
}, 180_000);
