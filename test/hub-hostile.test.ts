// `lowrank pull` and `lowrank push` against a Hub that misbehaves on purpose (a small local server):
// unsafe file listings, 401/403/404/5xx answers, connections dropped mid-body. Each is one line on
// stderr with exit code 2 (the user's input or credentials) or 1 (the Hub failed), no crash, and
// no file in the cache that a reader could take for a complete one.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { requireFixture } from "@lowrank/core/testing";
import { repoRoot } from "./cli-helpers.js";

const tmp = mkdtempSync(path.join(os.tmpdir(), "lowrank-hub-hostile-"));
const COMMIT = "ab".repeat(20);
const CONTENT = Buffer.from(JSON.stringify({ peft_type: "LORA", pad: "x".repeat(30_000) }));
const ETAG = createHash("sha1").update(`blob ${CONTENT.byteLength}\0`).update(CONTENT).digest("hex");
const TOKEN = "hf_cli_hostile_secret";

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;
let handler: Handler = () => undefined;
let server: http.Server;
let url: string;
beforeAll(async () => {
  server = http.createServer((req, res) => {
    req.resume();
    req.on("end", () => handler(req, res));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  rmSync(tmp, { recursive: true, force: true });
});

/** Runs the CLI without blocking this process (the misbehaving Hub answers from here). */
function lowrankAsync(args: string[], env: Record<string, string>): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(repoRoot, "packages/cli/dist/bin.js"), ...args], {
      env: { ...process.env, ...env, HF_TOKEN: "" },
      cwd: repoRoot,
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", (status) => resolve({ status, stdout, stderr }));
  });
}

/** A Hub serving org/repo with one file, except where `override` answers instead. */
function hub(override: (req: http.IncomingMessage, res: http.ServerResponse) => boolean, siblings = ["adapter_config.json"]): Handler {
  return (req, res) => {
    if (override(req, res)) return;
    const p = new URL(req.url ?? "/", "http://x").pathname;
    if (p.startsWith("/api/models/org/repo")) {
      res.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify({ sha: COMMIT, siblings: siblings.map((rfilename) => ({ rfilename })) }));
      return;
    }
    const range = Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? "")?.[1] ?? 0);
    res.writeHead(range ? 206 : 200, { ETag: `"${ETAG}"`, "Content-Length": String(CONTENT.byteLength - range) });
    res.end(req.method === "HEAD" ? undefined : CONTENT.subarray(range));
  };
}

function files(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => !e.isDirectory())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)));
}

let n = 0;
async function pull(extra: string[] = []): Promise<{ run: { status: number | null; stdout: string; stderr: string }; cache: string }> {
  const cache = path.join(tmp, `cache-${n++}`);
  const run = await lowrankAsync(["pull", "org/repo", ...extra], { HF_ENDPOINT: url, HF_HUB_CACHE: cache });
  return { run, cache };
}

function expectOneLine(run: { status: number | null; stdout: string; stderr: string }, status: number, pattern: RegExp): void {
  expect(run.status, run.stderr).toBe(status);
  expect(run.stderr).toMatch(/^lowrank: error: [^\n]+\n$/);
  expect(run.stderr).toMatch(pattern);
  expect(run.stderr).not.toContain(TOKEN);
  expect(run.stdout).toBe("");
}

describe("lowrank pull against a misbehaving Hub", () => {
  test.each([["../../escape.json"], ["/tmp/escape.json"], ["sub\\..\\..\\escape.json"], ["a/../../../escape.json"]])(
    "a listing with %j is refused before any write (exit 1)",
    async (bad) => {
      handler = hub(() => false, ["adapter_config.json", bad]);
      const { run, cache } = await pull();
      expectOneLine(run, 1, /^lowrank: error: org\/repo@main: the Hub lists an unsafe file path /);
      expect(run.stderr).toContain(`the Hub lists an unsafe file path ${JSON.stringify(bad)}; nothing was written`);
      expect(files(cache)).toEqual([]);
      expect(existsSync(path.join(tmp, "escape.json"))).toBe(false);
    },
  );

  test.each([
    [401, [] as string[], 2, /org\/repo@main: 401 unauthorized: it needs a token \(--token \/ HF_TOKEN\)/],
    [401, ["--token", TOKEN], 2, /org\/repo@main: 401 unauthorized: the token \(--token \/ HF_TOKEN\) has no access/],
    [403, ["--token", TOKEN], 2, /org\/repo@main: 403 forbidden: the token \(--token \/ HF_TOKEN\) has no access/],
    [404, [], 2, /org\/repo@main: 404 repository not found/],
    [500, ["--token", TOKEN], 1, /org\/repo@main: the Hub answered 500 \(Internal error, token \*\*\*\)$/m],
    [503, [], 1, /org\/repo@main: the Hub answered 503/],
  ] as const)("the listing answers %i (%j): one line, exit %i, nothing cached", async (status, extra, exit, pattern) => {
    handler = hub((req, res) => {
      if (!(req.url ?? "").startsWith("/api/")) return false;
      res.writeHead(status, { "Content-Type": "application/json", ...(status === 404 ? { "X-Error-Code": "RepoNotFound" } : {}) });
      // A careless Hub echoes the credentials it got: they must not reach the terminal.
      res.end(JSON.stringify({ error: `Internal error, token ${(req.headers.authorization ?? "none").replace(/^Bearer /, "")}` }));
      return true;
    });
    const { run, cache } = await pull([...extra]);
    expectOneLine(run, exit, pattern);
    expect(files(cache)).toEqual([]);
  });

  test.each([
    [403, 2],
    [404, 2],
    [500, 1],
  ] as const)("the download answers %i: one line, exit %i, no blob, no snapshot", async (status, exit) => {
    handler = hub((req, res) => {
      if (req.method !== "GET" || !(req.url ?? "").includes("/resolve/")) return false;
      res.writeHead(status, { "Content-Type": "application/json", ...(status === 404 ? { "X-Error-Code": "EntryNotFound" } : {}) }).end('{"error":"nope"}');
      return true;
    });
    const { run, cache } = await pull();
    expectOneLine(run, exit, /org\/repo@main: adapter_config\.json: /);
    expect(files(cache).filter((f) => !f.startsWith(".locks"))).toEqual([]);
  });

  test("connections dropped mid-body: one line, exit 1, no blob, no snapshot, the .incomplete kept for resuming", async () => {
    handler = hub((req, res) => {
      if (req.method !== "GET" || !(req.url ?? "").includes("/resolve/")) return false;
      const start = Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? "")?.[1] ?? 0);
      res.writeHead(start ? 206 : 200, { "Content-Length": String(CONTENT.byteLength - start) });
      res.write(CONTENT.subarray(start, start + 2000));
      setTimeout(() => res.socket?.destroy(), 10);
      return true;
    });
    const { run, cache } = await pull();
    expectOneLine(run, 1, /org\/repo@main: adapter_config\.json: the download broke off 5 times/);
    const repo = path.join(cache, "models--org--repo");
    expect(files(path.join(repo, "blobs"))).toEqual([`${ETAG}.incomplete`]);
    expect(existsSync(path.join(repo, "snapshots"))).toBe(false);
    // Once the Hub behaves, the same pull resumes and completes.
    handler = hub(() => false);
    const again = await lowrankAsync(["pull", "org/repo"], { HF_ENDPOINT: url, HF_HUB_CACHE: cache });
    expect(again.status, again.stderr).toBe(0);
    expect(files(path.join(repo, "blobs"))).toEqual([ETAG]);
  });
});

describe("lowrank push against a misbehaving Hub", () => {
  const adapter = requireFixture("gpt2-tiny-lora");
  /** The repo exists; `step` of the upload answers with `answer`. */
  function pushHub(step: string, answer: (res: http.ServerResponse) => void): Handler {
    return (req, res) => {
      const p = new URL(req.url ?? "/", "http://x").pathname;
      if (p.includes(step)) return answer(res);
      if (p === "/api/models/org/pushed")
        return void res.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify({ id: "org/pushed", sha: COMMIT }));
      if (p.includes("/preupload/")) {
        return void res
          .writeHead(200, { "Content-Type": "application/json" })
          .end(JSON.stringify({ files: ["adapter_config.json", "adapter_model.safetensors", "README.md"].map((path) => ({ path, uploadMode: "regular" })) }));
      }
      res.writeHead(500).end();
    };
  }
  const push = (extra: string[] = []) =>
    lowrankAsync(["push", adapter, "--repo", "org/pushed", ...extra], { HF_ENDPOINT: url, HF_HUB_CACHE: path.join(tmp, "push-cache") });

  test.each([
    [401, 2, /pushing to org\/pushed: 401 unauthorized: the token \(--token \/ HF_TOKEN\) has no access/],
    [403, 2, /pushing to org\/pushed: 403 forbidden: the token \(--token \/ HF_TOKEN\) has no access/],
    [500, 1, /pushing to org\/pushed: the Hub answered 500/],
    [502, 1, /pushing to org\/pushed: the Hub answered 502/],
  ] as const)("the commit answers %i: one line, exit %i", async (status, exit, pattern) => {
    handler = pushHub("/commit/", (res) =>
      res.writeHead(status, { "Content-Type": "application/json" }).end(JSON.stringify({ error: `refused for ${TOKEN}` })),
    );
    expectOneLine(await push(["--token", TOKEN]), exit, pattern);
  });

  test("a connection dropped during the commit: one line, exit 1", async () => {
    handler = pushHub("/commit/", (res) => res.socket?.destroy());
    expectOneLine(await push(["--token", TOKEN]), 1, /pushing to org\/pushed: the connection to http:\/\/127\.0\.0\.1:\d+ failed or broke off/);
  });

  test("a connection dropped mid-answer: one line, exit 1", async () => {
    handler = pushHub("/commit/", (res) => {
      res.writeHead(200, { "Content-Type": "application/json", "Content-Length": "400" });
      res.write('{"success": true, "commitOid": "');
      setTimeout(() => res.socket?.destroy(), 10);
    });
    expectOneLine(await push(["--token", TOKEN]), 1, /pushing to org\/pushed: the connection to http:\/\/127\.0\.0\.1:\d+ failed or broke off/);
  });
});
