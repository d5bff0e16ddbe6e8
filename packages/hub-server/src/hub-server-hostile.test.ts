// The hub server against hostile requests: oversized bodies (413), bad NDJSON commits (400), path
// traversal anywhere a path appears (400), and unauthorised writes (401/403). Each refusal is a JSON
// error, and the storage is left exactly as it was.
import { createHash } from "node:crypto";
import { readdir, readFile, mkdtemp, rm, stat } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseCommitPayload } from "./commit-payload.js";
import { createRequestHandler } from "./handle-request.js";
import { HubHttpError } from "./hub-error.js";
import { parseRoute } from "./route-parser.js";
import { HubStorage } from "./hub-storage.js";
import { startHubServer, type HubServer } from "./start-hub-server.js";
import { TokenAuth } from "./token-auth.js";
import { UrlSigner } from "./url-signer.js";

const TOKEN = "hf_hostile_test_token";
const auth = { Authorization: `Bearer ${TOKEN}` };
const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const ndjson = (lines: unknown[]) => lines.map((l) => JSON.stringify(l)).join("\n");
const b64 = (text: string) => Buffer.from(text).toString("base64");

interface RawAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/**
 * A request with exactly the given path bytes (fetch would normalise `..` and encode `\`), an
 * optional body (a Buffer, or `{ chunked: n }` to stream n bytes without Content-Length), and
 * headers. Write errors after the answer arrived (the server closed early) are ignored.
 */
function raw(
  base: string,
  method: string,
  pathname: string,
  options: { headers?: Record<string, string>; body?: Buffer | { chunked: number } } = {},
): Promise<RawAnswer> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    // A Buffer is sent with its Content-Length (Node would not frame a DELETE body otherwise).
    const headers = Buffer.isBuffer(options.body) ? { "Content-Length": String(options.body.byteLength), ...options.headers } : options.headers;
    const req = http.request({ host: url.hostname, port: url.port, method, path: pathname, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.on("error", (error) => reject(error));
    const body = options.body;
    if (body === undefined) return void req.end();
    if (Buffer.isBuffer(body)) return void req.end(body);
    const chunk = Buffer.alloc(16 * 1024, 0x61);
    let sent = 0;
    const pump = (): void => {
      while (sent < body.chunked) {
        sent += chunk.byteLength;
        if (req.destroyed) return;
        if (!req.write(chunk)) return void req.once("drain", pump);
      }
      req.end();
    };
    req.on("error", () => undefined);
    pump();
  });
}

/** Parses a JSON error answer and checks its shape: `{ error }` with a one-line message. */
function jsonError(answer: RawAnswer, status: number, pattern: RegExp): void {
  expect([answer.status, answer.body.slice(0, 300)]).toEqual([status, expect.any(String)]);
  expect(answer.headers["content-type"]).toMatch(/^application\/json/);
  const body = JSON.parse(answer.body) as { error: string };
  expect(body.error).toMatch(pattern);
  expect(body.error).not.toMatch(/[\r\n]/);
  expect(answer.headers["x-error-message"]).toBeTruthy();
}

/** Everything under the storage folder with its bytes, to prove a refusal wrote nothing. */
async function snapshotStorage(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isDirectory()) continue;
    const file = path.join(entry.parentPath, entry.name);
    if (path.relative(dir, file) === "tokens") continue;
    out.set(path.relative(dir, file), sha256(await readFile(file)));
  }
  return out;
}

describe("a hub server with a small body limit", () => {
  let dir: string;
  let server: HubServer;
  const LIMIT = 4096;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "lowrank-hub-limits-"));
    server = await startHubServer({ dir, tokens: [TOKEN], maxBodyBytes: LIMIT, maxLfsObjectBytes: 10_000 });
    const created = await fetch(`${server.url}/api/repos/create`, { method: "POST", headers: auth, body: JSON.stringify({ name: "org/limits" }) });
    expect(created.status).toBe(200);
  });
  afterAll(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const big = (n: number) =>
    ndjson([
      { key: "header", value: { summary: "big" } },
      { key: "file", value: { path: "big.txt", content: b64("x".repeat(n)) } },
    ]);

  it.each([
    [
      "a commit (declared Content-Length)",
      "POST",
      "/api/models/org/limits/commit/main",
      { "Content-Type": "application/x-ndjson" },
      () => Buffer.from(big(LIMIT)),
    ],
    [
      "a commit (chunked, no Content-Length)",
      "POST",
      "/api/models/org/limits/commit/main",
      { "Content-Type": "application/x-ndjson" },
      () => ({ chunked: 256 * 1024 }),
    ],
    ["a preupload", "POST", "/api/models/org/limits/preupload/main", { "Content-Type": "application/json" }, () => ({ chunked: 64 * 1024 })],
    ["an LFS batch", "POST", "/org/limits.git/info/lfs/objects/batch", { "Content-Type": "application/vnd.git-lfs+json" }, () => Buffer.alloc(LIMIT + 1, 0x20)],
    ["a repo creation", "POST", "/api/repos/create", { "Content-Type": "application/json" }, () => ({ chunked: 64 * 1024 })],
    ["a branch creation", "POST", "/api/models/org/limits/branch/dev", { "Content-Type": "application/json" }, () => Buffer.alloc(LIMIT + 1, 0x20)],
    ["a paths-info", "POST", "/api/models/org/limits/paths-info/main", { "Content-Type": "application/json" }, () => ({ chunked: 64 * 1024 })],
  ] as const)("refuses %s over the limit with 413 and a JSON error, writing nothing", async (_what, method, pathname, headers, body) => {
    const before = await snapshotStorage(dir);
    const answer = await raw(server.url, method, pathname, { headers: { ...auth, ...headers }, body: body() });
    jsonError(answer, 413, new RegExp(`^Request body too large \\(limit ${LIMIT} bytes\\)$`));
    expect(answer.headers.connection).toBe("close");
    expect(await snapshotStorage(dir)).toEqual(before);
    // The server is still serving.
    expect((await fetch(`${server.url}/api/models/org/limits`, { headers: auth })).status).toBe(200);
  });

  it("a body just under the limit is accepted", async () => {
    const body = big(1000);
    expect(Buffer.byteLength(body)).toBeLessThan(LIMIT);
    const answer = await raw(server.url, "POST", "/api/models/org/limits/commit/main", {
      headers: { ...auth, "Content-Type": "application/x-ndjson" },
      body: Buffer.from(body),
    });
    expect(answer.status, answer.body).toBe(200);
  });

  it("LFS objects above their own limit: 422 in the batch, 413 on PUT, nothing stored", async () => {
    const bytes = Buffer.alloc(10_001, 7);
    const batch = await raw(server.url, "POST", "/org/limits.git/info/lfs/objects/batch", {
      headers: { ...auth, "Content-Type": "application/vnd.git-lfs+json" },
      body: Buffer.from(JSON.stringify({ operation: "upload", objects: [{ oid: sha256(bytes), size: bytes.byteLength }] })),
    });
    expect(batch.status).toBe(200);
    expect(JSON.parse(batch.body).objects[0]).toMatchObject({ error: { code: 422, message: "Object too large (max 10000 bytes)" } });
    const before = await snapshotStorage(dir);
    const put = await raw(server.url, "PUT", `/api/lfs/upload/model/org/limits/${sha256(bytes)}?size=${bytes.byteLength}`, { headers: auth, body: bytes });
    jsonError(put, 413, /^Object too large \(max 10000 bytes\)$/);
    expect(await snapshotStorage(dir)).toEqual(before);
  });

  it("the default limit is 100 MB, checked from Content-Length before any byte of the body is read", async () => {
    const dir2 = await mkdtemp(path.join(tmpdir(), "lowrank-hub-default-"));
    const other = await startHubServer({ dir: dir2, tokens: [TOKEN] });
    try {
      await fetch(`${other.url}/api/repos/create`, { method: "POST", headers: auth, body: JSON.stringify({ name: "org/x" }) });
      // Headers only: the answer arrives although not one byte of the announced body was sent.
      const answer = await new Promise<RawAnswer>((resolve, reject) => {
        const url = new URL(other.url);
        const req = http.request(
          {
            host: url.hostname,
            port: url.port,
            method: "POST",
            path: "/api/models/org/x/commit/main",
            headers: { ...auth, "Content-Length": String(100 * 1024 * 1024 + 1) },
          },
          (res) => {
            let body = "";
            res.on("data", (c: Buffer) => (body += c));
            res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
          },
        );
        req.on("error", reject);
        req.flushHeaders();
      });
      jsonError(answer, 413, /^Request body too large \(limit 104857600 bytes\)$/);
    } finally {
      await other.close();
      await rm(dir2, { recursive: true, force: true });
    }
  });

  it("refuses a limit that is not a positive integer", async () => {
    await expect(startHubServer({ dir, maxBodyBytes: 0 })).rejects.toThrow(/`maxBodyBytes` must be a positive integer, got 0/);
    await expect(startHubServer({ dir, maxLfsObjectBytes: -1 })).rejects.toThrow(/`maxLfsObjectBytes` must be a positive integer/);
  });
});

describe("bad commits, path traversal and unauthorised writes", () => {
  let dir: string;
  let server: HubServer;
  let head: string;

  const commit = (body: string, branch = "main", headers: Record<string, string> = auth) =>
    raw(server.url, "POST", `/api/models/org/target/commit/${branch}`, {
      headers: { ...headers, "Content-Type": "application/x-ndjson" },
      body: Buffer.from(body),
    });

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "lowrank-hub-hostile-"));
    server = await startHubServer({ dir, tokens: [TOKEN] });
    expect((await fetch(`${server.url}/api/repos/create`, { method: "POST", headers: auth, body: JSON.stringify({ name: "org/target" }) })).status).toBe(200);
    const first = await commit(
      ndjson([
        { key: "header", value: { summary: "seed" } },
        { key: "file", value: { path: "sub/ok.txt", content: b64("ok") } },
      ]),
    );
    expect(first.status, first.body).toBe(200);
    head = JSON.parse(first.body).commitOid;
  });
  afterAll(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const headNow = async () => (await (await fetch(`${server.url}/api/models/org/target`, { headers: auth })).json()).sha as string;
  const file = (p: unknown) => JSON.stringify({ key: "file", value: { path: p, content: b64("pwned") } });
  const header = JSON.stringify({ key: "header", value: { summary: "evil" } });

  it.each([
    ["an empty body", "", /^Commit body is empty$/],
    ["a line that is not JSON", `${header}\n{"key":"file","value":{`, /^Commit body line 2 must be a JSON object \{ key, value \}$/],
    ["a line without a key", `${header}\n{"value":{}}`, /^Commit body line 2 must be a JSON object/],
    ["a JSON array line", `${header}\n[1,2]`, /^Commit body line 2 must be a JSON object/],
    ["an unknown operation", `${header}\n{"key":"copyFile","value":{"path":"a"}}`, /^Unknown commit operation: "copyFile"$/],
    ["a file without content", `${header}\n{"key":"file","value":{"path":"a.txt"}}`, /^Missing "content" for file a\.txt$/],
    ["content that is not base64", `${header}\n{"key":"file","value":{"path":"a.txt","content":"@@@"}}`, /^Content of a\.txt is not valid base64$/],
    ["an unknown encoding", `${header}\n{"key":"file","value":{"path":"a.txt","content":"x","encoding":"rot13"}}`, /^Unsupported encoding for a\.txt: rot13$/],
    ["a summary that is not a string", `{"key":"header","value":{"summary":5}}`, /^"summary" must be a string$/],
    ["a parentCommit that is not a commit id", `{"key":"header","value":{"parentCommit":"../main"}}`, /^"parentCommit" must be a 40-hex commit id$/],
    ["an LFS oid that is not a sha256", `${header}\n{"key":"lfsFile","value":{"path":"w.bin","oid":"../../x","size":1}}`, /^Invalid LFS oid for w\.bin/],
    [
      "an LFS size that is negative",
      `${header}\n{"key":"lfsFile","value":{"path":"w.bin","oid":"${"a".repeat(64)}","size":-1}}`,
      /^Invalid LFS size for w\.bin$/,
    ],
    [
      "an LFS hash algorithm other than sha256",
      `${header}\n{"key":"lfsFile","value":{"path":"w.bin","oid":"${"a".repeat(64)}","algo":"md5"}}`,
      /^Unsupported LFS hash algorithm/,
    ],
    ["a legacy body whose files are not a list", JSON.stringify({ summary: "x", files: "a.txt" }), /^"files" must be an array$/],
    ["a path that is not a string", `${header}\n${file(7)}`, /^File path must be a non-empty string$/],
  ])("a commit with %s is a 400, and nothing changes", async (_what, body, pattern) => {
    const before = await snapshotStorage(dir);
    jsonError(await commit(body), 400, pattern);
    expect(await headNow()).toBe(head);
    expect(await snapshotStorage(dir)).toEqual(before);
  });

  const TRAVERSALS = [
    "../evil.txt",
    "sub/../../evil.txt",
    "/etc/evil.txt",
    "sub\\..\\evil.txt",
    "C:/evil.txt",
    "./evil.txt",
    "sub//evil.txt",
    "nul\u0000.txt",
    ".git/hooks/post-commit",
  ];

  it.each(TRAVERSALS)("a commit writing, uploading or deleting %j is a 400 (NDJSON and legacy JSON), and nothing changes", async (bad) => {
    const before = await snapshotStorage(dir);
    const oid = "b".repeat(64);
    const bodies = [
      `${header}\n${file("fine.txt")}\n${file(bad)}`,
      `${header}\n${JSON.stringify({ key: "lfsFile", value: { path: bad, algo: "sha256", oid, size: 1 } })}`,
      `${header}\n${JSON.stringify({ key: "deletedFile", value: { path: bad } })}`,
      `${header}\n${JSON.stringify({ key: "deletedFolder", value: { path: bad } })}`,
      JSON.stringify({
        summary: "legacy",
        files: [
          { path: "fine.txt", content: b64("x") },
          { path: bad, content: b64("x") },
        ],
      }),
    ];
    for (const body of bodies) jsonError(await commit(body), 400, /^File path /);
    const pre = await raw(server.url, "POST", "/api/models/org/target/preupload/main", {
      headers: { ...auth, "Content-Type": "application/json" },
      body: Buffer.from(
        JSON.stringify({
          files: [
            { path: "fine.txt", size: 1, sample: "" },
            { path: bad, size: 1, sample: "" },
          ],
        }),
      ),
    });
    jsonError(pre, 400, /^File path /);
    const create = await raw(server.url, "POST", "/api/repos/create", {
      headers: { ...auth, "Content-Type": "application/json" },
      body: Buffer.from(JSON.stringify({ name: "org/with-files", files: [{ path: bad, content: "x" }] })),
    });
    jsonError(create, 400, /^File path /);
    expect(await headNow()).toBe(head);
    expect(await snapshotStorage(dir)).toEqual(before);
    await expect(stat(path.join(dir, "..", "evil.txt"))).rejects.toThrow();
  });

  it.each([
    ["a resolve of ..%2F..%2F", "/org/target/resolve/main/..%2F..%2F..%2Frepo.json", 400, /^File path must not contain "\." or "\.\." segments/],
    ["a resolve of %2E%2E segments through an encoded slash", "/org/target/resolve/main/sub%2F%2E%2E%2F%2E%2E%2Fx", 400, /"\." or "\.\."/],
    ["a resolve with a backslash", "/org/target/resolve/main/sub%5C..%5Cok.txt", 400, /backslashes/],
    ["a resolve with a NUL", "/org/target/resolve/main/ok%00.txt", 400, /NUL/],
    ["a resolve of an absolute path", "/org/target/resolve/main/%2Fetc%2Fpasswd", 400, /empty segments|absolute/],
    ["a tree of ..", "/api/models/org/target/tree/main/..%2F..", 400, /"\." or "\.\."/],
    ["a raw of ..", "/org/target/raw/main/..%2Fx", 400, /"\." or "\.\."/],
    ["a resolve with malformed percent-encoding", "/org/target/resolve/main/%E0%A4%A", 400, /Malformed percent-encoding/],
    ["a repo id with ..", "/api/models/org/..%2F..%2Fx", 404, /Not found/],
    ["an LFS object id that is a path", "/api/lfs/download/model/org/target/..%2F..%2Frepo.json", 404, /LFS object not found/],
  ] as const)("%s is refused", async (_what, pathname, status, pattern) => {
    jsonError(await raw(server.url, "GET", pathname, { headers: auth }), status, pattern);
  });

  it("raw `..` in a URL is resolved before routing, so it cannot reach outside the repo's files", async () => {
    // WHATWG URL parsing removes dot segments: this is /org/ok.txt, which is no route at all.
    const answer = await raw(server.url, "GET", "/org/target/resolve/main/../../../sub/ok.txt", { headers: auth });
    jsonError(answer, 404, /^Not found: GET \/org\/sub\/ok\.txt$/);
  });

  it("paths-info with a traversal is a 400", async () => {
    const answer = await raw(server.url, "POST", "/api/models/org/target/paths-info/main", {
      headers: { ...auth, "Content-Type": "application/json" },
      body: Buffer.from(JSON.stringify({ paths: ["sub/ok.txt", "../../etc/passwd"] })),
    });
    jsonError(answer, 400, /"\." or "\.\."/);
  });

  it.each([
    ["../../escape", "Invalid branch name"],
    ["feature/../../x", "Invalid branch name"],
    ["../main", "Invalid branch name"],
  ])("branch %j is refused for commits and branch creation", async (branch, message) => {
    const before = await snapshotStorage(dir);
    jsonError(await commit(`${header}\n${file("x.txt")}`, encodeURIComponent(branch)), 400, new RegExp(message));
    jsonError(
      await raw(server.url, "POST", `/api/models/org/target/branch/${encodeURIComponent(branch)}`, { headers: auth, body: Buffer.from("{}") }),
      400,
      new RegExp(message),
    );
    expect(await snapshotStorage(dir)).toEqual(before);
  });

  /** Every write endpoint, as [name, method, path, body]. */
  const WRITES: Array<[string, string, string, unknown]> = [
    ["create a repo", "POST", "/api/repos/create", { name: "org/new" }],
    ["delete a repo", "DELETE", "/api/repos/delete", { name: "target", organization: "org" }],
    ["commit", "POST", "/api/models/org/target/commit/main", undefined],
    ["preupload", "POST", "/api/models/org/target/preupload/main", { files: [{ path: "a.txt", size: 1, sample: "" }] }],
    ["LFS batch upload", "POST", "/org/target.git/info/lfs/objects/batch", { operation: "upload", objects: [{ oid: "c".repeat(64), size: 1 }] }],
    ["LFS PUT without a signature", "PUT", `/api/lfs/upload/model/org/target/${sha256(Buffer.from("z"))}?size=1`, "z"],
    ["create a branch", "POST", "/api/models/org/target/branch/dev", {}],
    ["delete a branch", "DELETE", "/api/models/org/target/branch/main", undefined],
    ["change settings", "PUT", "/api/models/org/target/settings", { private: true }],
  ];

  function bodyOf(body: unknown): Buffer | undefined {
    if (body === undefined) return Buffer.from(`${header}\n${file("intruder.txt")}`);
    return Buffer.from(typeof body === "string" ? body : JSON.stringify(body));
  }

  it.each(WRITES)("%s without a token, or with a wrong one, is a 401 and changes nothing", async (_what, method, pathname, body) => {
    const before = await snapshotStorage(dir);
    const attempts: Array<Record<string, string>> = [
      {},
      { Authorization: "Bearer hf_wrong_token" },
      { Authorization: `Basic ${Buffer.from(`user:${TOKEN}x`).toString("base64")}` },
    ];
    for (const headers of attempts) {
      const answer = await raw(server.url, method, pathname, { headers: { ...headers, "Content-Type": "application/json" }, body: bodyOf(body) });
      jsonError(answer, 401, /token|credentials/i);
      expect(answer.body).not.toContain("hf_wrong_token");
    }
    expect(await headNow()).toBe(head);
    expect(await snapshotStorage(dir)).toEqual(before);
  });

  it("a forged or expired upload signature is a 403 and stores nothing", async () => {
    const before = await snapshotStorage(dir);
    const bytes = Buffer.from("z");
    const answer = await raw(server.url, "PUT", `/api/lfs/upload/model/org/target/${sha256(bytes)}?size=1&expires=9999999999&sig=forged`, { body: bytes });
    jsonError(answer, 403, /signature is invalid or expired/);
    expect(await snapshotStorage(dir)).toEqual(before);
  });

  it("reads of a public repo need no token (the 401s above are about writing)", async () => {
    const answer = await raw(server.url, "GET", "/org/target/resolve/main/sub/ok.txt");
    expect([answer.status, answer.body]).toEqual([200, "ok"]);
  });

  it.each(WRITES)("%s from a non-loopback address of a server without tokens is a 403 and changes nothing", async (_what, method, pathname, body) => {
    // No token configured: writes are for loopback only. The request arrives over real HTTP, with
    // the socket's remote address set to a documentation address (as a request from the LAN).
    const open = await mkdtemp(path.join(tmpdir(), "lowrank-hub-open-"));
    const storage = await HubStorage.open(open);
    await storage.createRepo({ type: "model", id: "org/target" }, { private: false });
    const ctx = {
      storage,
      auth: await TokenAuth.create([], path.join(open, "tokens")),
      signer: new UrlSigner(),
      logger: { info: () => undefined, warn: () => undefined },
      fallbackUrl: "",
      limits: { body: 1 << 20, lfsObject: 1 << 20 },
    };
    const handler = createRequestHandler(ctx);
    const lan = http.createServer((req, res) => {
      Object.defineProperty(req.socket, "remoteAddress", { value: "203.0.113.9", configurable: true });
      handler(req, res);
    });
    await new Promise<void>((resolve) => lan.listen(0, "127.0.0.1", resolve));
    try {
      const before = await snapshotStorage(open);
      const url = `http://127.0.0.1:${(lan.address() as AddressInfo).port}`;
      const answer = await raw(url, method, pathname, { headers: { "Content-Type": "application/json" }, body: bodyOf(body) });
      jsonError(answer, 403, /writes are accepted only from loopback addresses/);
      expect(await snapshotStorage(open)).toEqual(before);
      // Reads from there still work.
      expect((await raw(url, "GET", "/api/models/org/target")).status).toBe(200);
    } finally {
      lan.closeAllConnections();
      await new Promise((resolve) => lan.close(resolve));
      await rm(open, { recursive: true, force: true });
    }
  });
});

describe("property: hostile commit bodies and request paths", () => {
  const expectBadRequest = (run: () => unknown) => {
    try {
      run();
    } catch (error) {
      expect(error).toBeInstanceOf(HubHttpError);
      expect((error as HubHttpError).status).toBe(400);
      expect((error as HubHttpError).message).not.toMatch(/[\r\n]/);
    }
  };

  const hex = (n: number) => fc.string({ unit: fc.constantFrom(..."0123456789abcdef"), minLength: n, maxLength: n });

  it("random NDJSON lines parse or are a 400 (never a 500), and every accepted path is safe", () => {
    const path = fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom("../x", "/abs", "a\\b", "a//b", "./a", ".git/x", "ok/file.txt", "a\u0000b", "C:/x"));
    const value = fc.oneof(
      fc.record(
        {
          path,
          content: fc.oneof(fc.base64String({ maxLength: 16 }), fc.string({ maxLength: 8 }), fc.anything()),
          encoding: fc.oneof(fc.constantFrom("base64", "utf-8", "hex"), fc.anything()),
        },
        { requiredKeys: [] },
      ),
      fc.record(
        {
          path,
          oid: fc.oneof(hex(64), fc.string()),
          size: fc.oneof(fc.nat(), fc.integer(), fc.double(), fc.anything()),
          algo: fc.constantFrom("sha256", "md5"),
        },
        { requiredKeys: [] },
      ),
      fc.record({ summary: fc.oneof(fc.string(), fc.anything()), parentCommit: fc.oneof(hex(40), fc.string(), fc.anything()) }, { requiredKeys: [] }),
      fc.anything(),
    );
    const line = fc.oneof(
      fc.record({ key: fc.constantFrom("header", "file", "lfsFile", "deletedFile", "deletedFolder", "copyFile"), value }).map((l) => JSON.stringify(l)),
      fc.string({ maxLength: 20 }),
      fc.json(),
    );
    let accepted = 0;
    fc.assert(
      fc.property(fc.array(line, { maxLength: 5 }), fc.constantFrom("\n", "\r\n"), (lines, eol) => {
        let payload;
        try {
          payload = parseCommitPayload(Buffer.from(lines.join(eol)));
        } catch (error) {
          expectBadRequest(() => {
            throw error;
          });
          return;
        }
        accepted++;
        for (const op of payload.operations) {
          expect(op.path.split("/").every((seg) => seg !== "" && seg !== "." && seg !== ".." && seg.toLowerCase() !== ".git")).toBe(true);
          expect(op.path).not.toMatch(/^\/|\\|\0|^[A-Za-z]:/);
        }
      }),
      { numRuns: 2000 },
    );
    expect(accepted).toBeGreaterThan(0);
  });

  it("random request paths route or are a 400 (never a crash)", () => {
    const segment = fc.oneof(
      fc.string({ maxLength: 6 }),
      fc.constantFrom(
        "api",
        "models",
        "datasets",
        "resolve",
        "tree",
        "commit",
        "..",
        "%2e%2e",
        "%2F",
        "%E0%A4%A",
        "lfs",
        "info",
        "objects",
        "batch",
        "repo.git",
      ),
    );
    fc.assert(
      fc.property(fc.array(segment, { maxLength: 8 }), (segments) => {
        expectBadRequest(() => parseRoute(`/${segments.join("/")}`));
      }),
      { numRuns: 2000 },
    );
  });
});
