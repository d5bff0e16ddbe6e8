// The pull and push clients against a Hub that misbehaves on purpose: unsafe file listings, error
// statuses, connections dropped mid-body, short and long bodies. Every failure is one clear line, and
// nothing half-written is left where a reader would take it for a file.
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { LowrankError } from "@lowrank/core";
import { requireFixture } from "@lowrank/core/testing";
import type { HubConfig } from "./hub-config.js";
import { pullRepo } from "./pull-repo.js";
import { pushAdapter } from "./push-adapter.js";

const COMMIT = "c0ffee".padEnd(40, "0");
const CONTENT = Buffer.from(`{"hello": "world", "padding": "${"x".repeat(20_000)}"}`);
const GIT_OID = createHash("sha1").update(`blob ${CONTENT.byteLength}\0`).update(CONTENT).digest("hex");

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) => void;

interface FakeHub {
  url: string;
  /** Every request seen, as "METHOD path" (query dropped). */
  seen: string[];
  /** Replaces the handler; the default serves one repo "org/repo" with one file. */
  handle(handler: Handler): void;
  close(): Promise<void>;
}

/** The listing, HEAD and GET answers of a well-behaved Hub serving `files` at COMMIT. */
function goodHub(files: Record<string, Buffer> = { "adapter_config.json": CONTENT }, siblings?: unknown): Handler {
  return (req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    if (url.pathname.startsWith("/api/models/org/repo")) {
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end(JSON.stringify({ sha: COMMIT, siblings: siblings ?? Object.keys(files).map((rfilename) => ({ rfilename })) }));
      return;
    }
    const prefix = `/org/repo/resolve/${COMMIT}/`;
    const name = decodeURIComponent(url.pathname.slice(prefix.length));
    const bytes = url.pathname.startsWith(prefix) ? files[name] : undefined;
    if (!bytes) {
      res.writeHead(404, { "X-Error-Code": "EntryNotFound" }).end();
      return;
    }
    const etag = createHash("sha1").update(`blob ${bytes.byteLength}\0`).update(bytes).digest("hex");
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
    const start = range ? Number(range[1]) : 0;
    res.writeHead(range ? 206 : 200, { ETag: `"${etag}"`, "Content-Length": String(bytes.byteLength - start) });
    res.end(req.method === "HEAD" ? undefined : bytes.subarray(start));
  };
}

async function startFakeHub(): Promise<FakeHub> {
  let handler: Handler = goodHub();
  const seen: string[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      seen.push(`${req.method} ${new URL(req.url ?? "/", "http://x").pathname}`);
      handler(req, res, Buffer.concat(chunks));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    handle: (h) => {
      handler = h;
    },
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** All files (not folders) under `dir`, relative, symlinks included; [] when it does not exist. */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => !e.isDirectory())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort();
}

let hub: FakeHub;
let tmp: string;
let counter = 0;
beforeAll(async () => {
  hub = await startFakeHub();
  tmp = await mkdtemp(path.join(os.tmpdir(), "lowrank-hostile-hub-"));
});
afterAll(async () => {
  await hub?.close();
  await rm(tmp, { recursive: true, force: true });
});

function config(token?: string): HubConfig {
  return { hubUrl: hub.url, token, cacheDir: path.join(tmp, `cache-${counter++}`), offline: false };
}

async function pullError(cfg: HubConfig, repo = "org/repo"): Promise<LowrankError> {
  const error = await pullRepo({ repo, config: cfg }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, "the pull should have failed").toBeInstanceOf(LowrankError);
  const e = error as LowrankError;
  expect(e.message).not.toMatch(/[\r\n]/);
  expect(e.message.length).toBeLessThan(400);
  return e;
}

describe("pull: a Hub listing unsafe file paths is refused before anything is written", () => {
  test.each([
    ["../escape.txt"],
    ["a/../../escape.txt"],
    ["/tmp/absolute.txt"],
    ["sub\\..\\..\\escape.txt"],
    ["C:\\escape.txt"],
    ["./dot.txt"],
    ["a//b.txt"],
    ["trailing/"],
    [""],
    ["nul\u0000.txt"],
  ])("%j", async (name) => {
    hub.seen.length = 0;
    hub.handle(goodHub({ "adapter_config.json": CONTENT, [name]: CONTENT }));
    const cfg = config();
    const e = await pullError(cfg);
    expect(e.code).toBe("IO_ERROR");
    expect(e.message).toContain(`org/repo@main: the Hub lists an unsafe file path ${JSON.stringify(name)}`);
    expect(filesUnder(cfg.cacheDir)).toEqual([]);
    // Refused from the listing alone: not even the safe file was asked for.
    expect(hub.seen).toEqual(["GET /api/models/org/repo/revision/main"]);
    expect(existsSync(path.join(tmp, "escape.txt"))).toBe(false);
    expect(existsSync(path.join(cfg.cacheDir, "escape.txt"))).toBe(false);
  });

  test("a path that is both a file and a folder is refused before anything is written", async () => {
    hub.handle(goodHub({ a: CONTENT, "a/b.txt": CONTENT }));
    const cfg = config();
    const e = await pullError(cfg);
    expect(e.message).toMatch(/the Hub lists "a" both as a file and as a folder/);
    expect(filesUnder(cfg.cacheDir)).toEqual([]);
  });

  test.each([
    ["not JSON", "<html>oops</html>", /org\/repo@main: the Hub's answer is not JSON/],
    ["siblings that are not a list", JSON.stringify({ sha: COMMIT, siblings: "adapter_config.json" }), /org\/repo@main: the Hub's answer has no list of files/],
    [
      "a file name that is not a string",
      JSON.stringify({ sha: COMMIT, siblings: [{ rfilename: 7 }] }),
      /org\/repo@main: the Hub's answer has no list of files/,
    ],
    ["no commit sha", JSON.stringify({ siblings: [] }), /org\/repo@main: the Hub's answer has no commit sha/],
    ["a commit sha with a path in it", JSON.stringify({ sha: "../../../../etc", siblings: [] }), /has no commit sha/],
  ])("a repo listing with %s is a one-line IO_ERROR", async (_what, body, pattern) => {
    hub.handle((_req, res) => res.writeHead(200, { "Content-Type": "application/json" }).end(body));
    const cfg = config();
    const e = await pullError(cfg);
    expect(e.code).toBe("IO_ERROR");
    expect(e.message).toMatch(pattern);
    expect(filesUnder(cfg.cacheDir)).toEqual([]);
  });

  test("an endless repo listing is cut off at 64 MB: a one-line IO_ERROR, memory stays bounded", async () => {
    hub.handle((_req, res) => {
      res.writeHead(200, { "Content-Type": "application/json" });
      const chunk = Buffer.alloc(1 << 20, 0x20);
      let sent = 0;
      const pump = (): void => {
        while (sent < 200) {
          sent++;
          if (!res.write(chunk)) return void res.once("drain", pump);
        }
        res.end("{}");
      };
      res.on("error", () => undefined);
      pump();
    });
    const cfg = config();
    const e = await pullError(cfg);
    expect(e.code).toBe("IO_ERROR");
    expect(e.message).toBe("org/repo@main: the Hub's answer is larger than 67108864 bytes");
    expect(filesUnder(cfg.cacheDir)).toEqual([]);
  });

  test("a --revision with .. segments is refused before the Hub is asked", async () => {
    hub.seen.length = 0;
    hub.handle(goodHub());
    const cfg = config();
    const error = await pullRepo({ repo: "org/repo", revision: "../../../escape", config: cfg }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LowrankError);
    expect((error as LowrankError).code).toBe("USAGE");
    expect((error as LowrankError).message).toMatch(/revision "..\/..\/..\/escape" is not a branch, tag or commit name/);
    expect(hub.seen).toEqual([]);
    expect(filesUnder(cfg.cacheDir)).toEqual([]);
  });
});

/** A Hub that answers `status` on the request whose method and path match `when`, and behaves otherwise. */
function failing(status: number, when: (req: http.IncomingMessage) => boolean, headers: Record<string, string> = {}, body = ""): Handler {
  const good = goodHub();
  return (req, res, b) => {
    if (!when(req)) return good(req, res, b);
    res.writeHead(status, { "Content-Type": body.startsWith("{") ? "application/json" : "text/html", ...headers });
    res.end(req.method === "HEAD" ? undefined : body);
  };
}

const isInfo = (req: http.IncomingMessage) => (req.url ?? "").startsWith("/api/models/");
const isHead = (req: http.IncomingMessage) => req.method === "HEAD";
const isGet = (req: http.IncomingMessage) => req.method === "GET" && (req.url ?? "").includes("/resolve/");

describe("pull: error answers are one clear line and leave no file in the cache", () => {
  test.each([
    ["the listing", 401, isInfo, {}, "", undefined, "USAGE", /^org\/repo@main: 401 unauthorized: it needs a token \(--token \/ HF_TOKEN\)$/],
    [
      "the listing",
      401,
      isInfo,
      {},
      '{"error":"Invalid credentials"}',
      "hf_secret_123",
      "USAGE",
      /^org\/repo@main: 401 unauthorized: the token \(--token \/ HF_TOKEN\) has no access \(Invalid credentials\)$/,
    ],
    [
      "the listing",
      403,
      isInfo,
      {},
      '{"error":"Access to this repo is restricted"}',
      "hf_secret_123",
      "USAGE",
      /^org\/repo@main: 403 forbidden: .*\(Access to this repo is restricted\)$/,
    ],
    [
      "the listing",
      403,
      isInfo,
      {},
      '{"error":"token hf_secret_123 lacks access"}',
      "hf_secret_123",
      "USAGE",
      /^org\/repo@main: 403 forbidden: .*\(token \*\*\* lacks access\)$/,
    ],
    ["the listing", 404, isInfo, { "X-Error-Code": "RepoNotFound" }, "", undefined, "USAGE", /^org\/repo@main: 404 repository not found$/],
    [
      "the listing",
      404,
      isInfo,
      { "X-Error-Code": "RevisionNotFound", "X-Error-Message": "Invalid rev id: main" },
      "",
      undefined,
      "USAGE",
      /^org\/repo@main: 404 revision not found \(Invalid rev id: main\)$/,
    ],
    [
      "the listing",
      500,
      isInfo,
      {},
      "<html>\n<h1>Internal Server Error</h1>\n</html>",
      undefined,
      "IO_ERROR",
      /^org\/repo@main: the Hub answered 500 \(<html>\)$/,
    ],
    [
      "the listing",
      503,
      isInfo,
      {},
      `{"error":"${"down for maintenance ".repeat(100)}"}`,
      undefined,
      "IO_ERROR",
      /^org\/repo@main: the Hub answered 503 \(down for maintenance .*\)$/,
    ],
    ["the HEAD of a file", 403, isHead, {}, "", "hf_secret_123", "USAGE", /^org\/repo@main: adapter_config\.json: 403 forbidden/],
    [
      "the HEAD of a file",
      404,
      isHead,
      { "X-Error-Code": "EntryNotFound" },
      "",
      undefined,
      "USAGE",
      /^org\/repo@main: adapter_config\.json: 404 file not found$/,
    ],
    ["the HEAD of a file", 502, isHead, {}, "", undefined, "IO_ERROR", /^org\/repo@main: adapter_config\.json: the Hub answered 502$/],
    ["the download", 401, isGet, {}, "", undefined, "USAGE", /^org\/repo@main: adapter_config\.json: 401 unauthorized/],
    ["the download", 404, isGet, { "X-Error-Code": "EntryNotFound" }, "", undefined, "USAGE", /^org\/repo@main: adapter_config\.json: 404 file not found$/],
    ["the download", 500, isGet, {}, '{"error":"boom"}', undefined, "IO_ERROR", /^org\/repo@main: adapter_config\.json: the Hub answered 500 \(boom\)$/],
  ] as const)("%s answers %i", async (_where, status, when, headers, body, token, code, pattern) => {
    hub.handle(failing(status, when, headers, body));
    const cfg = config(token);
    const e = await pullError(cfg);
    expect(e.code).toBe(code);
    expect(e.message).toMatch(pattern);
    if (token) expect(e.message).not.toContain(token);
    expect(filesUnder(cfg.cacheDir).filter((f) => !f.startsWith(".locks"))).toEqual([]);
  });

  test("a Hub that cannot be reached is a one-line IO_ERROR", async () => {
    const gone = await startFakeHub();
    await gone.close();
    const cfg = { ...config(), hubUrl: gone.url };
    const e = await pullError(cfg);
    expect(e.code).toBe("IO_ERROR");
    expect(e.message).toMatch(/^org\/repo@main: cannot reach http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)$/);
  });
});

describe("pull: broken downloads", () => {
  const blobs = (cfg: HubConfig) => path.join(cfg.cacheDir, "models--org--repo", "blobs");
  const snapshot = (cfg: HubConfig) => path.join(cfg.cacheDir, "models--org--repo", "snapshots", COMMIT);

  /** Serves the listing and HEAD well, and the GET of the file through `get`. */
  function withGet(get: Handler): Handler {
    const good = goodHub();
    return (req, res, body) => (isGet(req) ? get(req, res, body) : good(req, res, body));
  }

  test("a connection dropped mid-body every time: one-line IO_ERROR after retries, no blob, no snapshot; the partial .incomplete resumes later", async () => {
    const ranges: string[] = [];
    hub.handle(
      withGet((req, res) => {
        ranges.push(req.headers.range ?? "");
        const start = Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? "")?.[1] ?? 0);
        // Announce the rest of the file, send 1000 bytes of it, and drop the connection.
        res.writeHead(start > 0 ? 206 : 200, { "Content-Length": String(CONTENT.byteLength - start) });
        res.write(CONTENT.subarray(start, start + 1000));
        setTimeout(() => res.socket?.destroy(), 10);
      }),
    );
    const cfg = config();
    const e = await pullError(cfg);
    expect(e.code).toBe("IO_ERROR");
    expect(e.message).toMatch(/^org\/repo@main: adapter_config\.json: the download broke off 5 times \(.+\)$/);
    expect(existsSync(path.join(blobs(cfg), GIT_OID))).toBe(false);
    expect(existsSync(snapshot(cfg))).toBe(false);
    // The design keeps what arrived in blobs/<etag>.incomplete (never under the blob's own name) so
    // that the next pull resumes with a Range request instead of starting over.
    expect(ranges[0]).toBe("");
    expect(ranges.slice(1).every((r) => /^bytes=[1-9]\d*-$/.test(r))).toBe(true);
    const partial = readFileSync(path.join(blobs(cfg), `${GIT_OID}.incomplete`));
    expect(partial.byteLength).toBe(5000);
    expect(Buffer.compare(partial, CONTENT.subarray(0, 5000))).toBe(0);

    ranges.length = 0;
    hub.handle(
      withGet((req, res, body) => {
        ranges.push(req.headers.range ?? "");
        goodHub()(req, res, body);
      }),
    );
    const result = await pullRepo({ repo: "org/repo", config: cfg });
    expect(ranges).toEqual(["bytes=5000-"]);
    expect(Buffer.compare(readFileSync(path.join(result.snapshotDir, "adapter_config.json")), CONTENT)).toBe(0);
    expect(filesUnder(blobs(cfg))).toEqual([GIT_OID]);
  });

  test("a body that ends cleanly but short, every time, is an IO_ERROR (no endless retry)", async () => {
    let requests = 0;
    hub.handle(
      withGet((_req, res) => {
        requests++;
        // Chunked: the response ends normally, after half the file.
        res.writeHead(200, { "Transfer-Encoding": "chunked" });
        res.end(CONTENT.subarray(0, CONTENT.byteLength >> 1));
      }),
    );
    const cfg = config();
    const e = await pullError(cfg);
    expect(e.code).toBe("IO_ERROR");
    expect(e.message).toMatch(/^org\/repo@main: adapter_config\.json: the download broke off 5 times \(the body ended after \d+ of \d+ bytes\)$/);
    expect(requests).toBe(5);
    expect(existsSync(path.join(blobs(cfg), GIT_OID))).toBe(false);
    expect(existsSync(snapshot(cfg))).toBe(false);
  });

  test("a body longer than announced is cut off and refused: no blob, no .incomplete", async () => {
    hub.handle(
      withGet((_req, res) => {
        res.writeHead(200, { "Transfer-Encoding": "chunked" });
        // An endless stream would fill the disk: the client must stop reading at the announced size.
        const chunk = Buffer.alloc(64 * 1024, 0x41);
        let sent = 0;
        const pump = (): void => {
          while (sent < 64 * 2 ** 20) {
            sent += chunk.byteLength;
            if (!res.write(chunk)) return void res.once("drain", pump);
          }
          res.end();
        };
        res.on("error", () => undefined);
        pump();
      }),
    );
    const cfg = config();
    const e = await pullError(cfg);
    expect(e.code).toBe("IO_ERROR");
    expect(e.message).toMatch(/^org\/repo@main: adapter_config\.json: the Hub sent more than the \d+ bytes it announced; nothing was kept$/);
    expect(filesUnder(blobs(cfg))).toEqual([]);
    expect(existsSync(snapshot(cfg))).toBe(false);
  });

  test("content that does not match its ETag is refused: no blob, no .incomplete", async () => {
    hub.handle(
      withGet((_req, res) => {
        const forged = Buffer.from(CONTENT);
        forged[100]! ^= 1;
        res.writeHead(200, { "Content-Length": String(forged.byteLength) }).end(forged);
      }),
    );
    const cfg = config();
    const e = await pullError(cfg);
    expect(e.code).toBe("IO_ERROR");
    expect(e.message).toMatch(/^org\/repo@main: adapter_config\.json: downloaded content has git sha1 [0-9a-f]{40}, expected [0-9a-f]{40}; nothing was kept$/);
    expect(filesUnder(blobs(cfg))).toEqual([]);
    expect(existsSync(snapshot(cfg))).toBe(false);
  });

  test("an ETag that is not a blob id (a path, say) is refused before anything is written", async () => {
    const good = goodHub();
    hub.handle((req, res, body) => {
      if (!isHead(req)) return good(req, res, body);
      res.writeHead(200, { ETag: '"../../../escape"', "Content-Length": "10" }).end();
    });
    const cfg = config();
    const e = await pullError(cfg);
    expect(e.message).toMatch(/^org\/repo@main: adapter_config\.json: the Hub gave no usable ETag \/ size$/);
    expect(filesUnder(cfg.cacheDir).filter((f) => !f.startsWith(".locks"))).toEqual([]);
  });
});

describe("push: error answers and dropped connections are one clear line", () => {
  const adapter = requireFixture("gpt2-tiny-lora");

  async function pushError(token?: string): Promise<LowrankError> {
    const error = await pushAdapter({ dir: adapter, repo: "org/pushed", config: config(token) }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error, "the push should have failed").toBeInstanceOf(LowrankError);
    const e = error as LowrankError;
    expect(e.message).not.toMatch(/[\r\n]/);
    expect(e.message.length).toBeLessThan(400);
    if (token) expect(e.message).not.toContain(token);
    return e;
  }

  /** A Hub where the repo exists and `step` ("preupload", "commit", ...) fails with `status`. */
  function pushHub(step: string, answer: (res: http.ServerResponse, req: http.IncomingMessage) => void): Handler {
    return (req, res) => {
      const p = new URL(req.url ?? "/", "http://x").pathname;
      if (p.includes(step)) return answer(res, req);
      if (p === "/api/models/org/pushed") {
        // When creating the repo is the failing step, the repo does not exist yet.
        if (step === "/api/repos/create") return void res.writeHead(404, { "X-Error-Code": "RepoNotFound" }).end();
        return void res.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify({ id: "org/pushed", sha: COMMIT }));
      }
      if (p.startsWith("/api/models/org/pushed/preupload/")) {
        return void res.writeHead(200, { "Content-Type": "application/json" }).end(
          JSON.stringify({
            files: [
              { path: "adapter_config.json", uploadMode: "regular" },
              { path: "adapter_model.safetensors", uploadMode: "regular" },
              { path: "README.md", uploadMode: "regular" },
            ],
          }),
        );
      }
      res.writeHead(500).end();
    };
  }

  test.each([
    [
      "creating the repo",
      "/api/repos/create",
      401,
      "hf_secret_456",
      new RegExp(
        /^creating org\/pushed: 401 unauthorized: the token \(--token \/ HF_TOKEN\) has no access /.source +
          /\(status 401\. URL: http:\/\/127\.0\.0\.1:\d+\/api\/repos\/create\)$/.source,
      ),
    ],
    [
      "creating the repo",
      "/api/repos/create",
      403,
      undefined,
      /^creating org\/pushed: 403 forbidden: it needs a token \(--token \/ HF_TOKEN\) \(status 403\. URL: /,
    ],
    ["creating the repo", "/api/repos/create", 500, undefined, /^creating org\/pushed: the Hub answered 500 \(status 500\. URL: /],
    [
      "the preupload",
      "/preupload/",
      401,
      "hf_secret_456",
      /^pushing to org\/pushed: 401 unauthorized: the token \(--token \/ HF_TOKEN\) has no access \(status 401\. URL: .*\/preupload\/main\)$/,
    ],
    ["the preupload", "/preupload/", 404, undefined, /^pushing to org\/pushed: 404 not found \(status 404\. URL: .*\/preupload\/main\)$/],
    [
      "the commit",
      "/commit/",
      403,
      "hf_secret_456",
      /^pushing to org\/pushed: 403 forbidden: the token .* has no access \(status 403\. URL: .*\/commit\/main\)$/,
    ],
    ["the commit", "/commit/", 500, "hf_secret_456", /^pushing to org\/pushed: the Hub answered 500 \(status 500\. URL: .*\/commit\/main\)$/],
    ["the commit", "/commit/", 503, undefined, /^pushing to org\/pushed: the Hub answered 503 \(status 503\. URL: .*\/commit\/main\)$/],
  ] as const)("%s (%s) answering %i", async (_what, step, status, token, pattern) => {
    hub.handle(pushHub(step, (res) => res.writeHead(status, { "Content-Type": "application/json" }).end(JSON.stringify({ error: `status ${status}` }))));
    const e = await pushError(token);
    expect(e.message).toMatch(pattern);
    expect(e.code).toBe(status < 500 ? "USAGE" : "IO_ERROR");
  });

  test("a connection dropped while the commit is sent is a one-line IO_ERROR", async () => {
    hub.handle(pushHub("/commit/", (res) => res.socket?.destroy()));
    const e = await pushError("hf_secret_456");
    expect(e.code).toBe("IO_ERROR");
    expect(e.message).toMatch(
      /^pushing to org\/pushed: the connection to http:\/\/127\.0\.0\.1:\d+ failed or broke off \((other side closed|terminated|[^)]*ECONN\w+[^)]*)\)$/,
    );
  });

  test("a connection dropped mid-answer is a one-line IO_ERROR", async () => {
    hub.handle(
      pushHub("/commit/", (res) => {
        res.writeHead(200, { "Content-Type": "application/json", "Content-Length": "500" });
        res.write('{"success": true, "commitOid": "');
        setTimeout(() => res.socket?.destroy(), 10);
      }),
    );
    const e = await pushError("hf_secret_456");
    expect(e.code).toBe("IO_ERROR");
    expect(e.message).toMatch(
      /^pushing to org\/pushed: the connection to http:\/\/127\.0\.0\.1:\d+ failed or broke off \((other side closed|terminated|[^)]*ECONN\w+[^)]*)\)$/,
    );
  });
});

test("the fixture used for pushes is a valid adapter (the push cases fail for the Hub's reasons)", () => {
  expect(statSync(requireFixture("gpt2-tiny-lora", "adapter_model.safetensors")).size).toBeGreaterThan(0);
});
