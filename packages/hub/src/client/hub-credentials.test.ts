// The token sent to the Hub's own origin only, and what @huggingface/hub throws classified: credential
// problems as usage errors (never as a network failure), with the HTTP status and URL kept on the
// error. Against a real self-hosted Hub (@lowrank/hub-server): test/hub-credentials.test.ts.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { LowrankError } from "@lowrank/core";
import { requireFixture } from "@lowrank/core/testing";
import type { HubConfig } from "./hub-config.js";
import { HubError } from "./hub-error.js";
import { hubLibraryError } from "./hub-library-error.js";
import { pushAdapter } from "./push-adapter.js";

const TOKEN = "operator-secret";
const adapter = requireFixture("gpt2-tiny-lora");

let tmp: string;
let counter = 0;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "lowrank-hub-credentials-"));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

function config(token: string | undefined, hubUrl: string): HubConfig {
  return { hubUrl, token, cacheDir: path.join(tmp, `cache-${counter++}`), offline: false };
}

async function failure(promise: Promise<unknown>): Promise<HubError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, "the call should have failed").toBeInstanceOf(HubError);
  expect(error).toBeInstanceOf(LowrankError);
  const e = error as HubError;
  expect(e.message).not.toMatch(/[\r\n]/);
  return e;
}

describe("hubLibraryError: what @huggingface/hub throws, classified", () => {
  const cfg = { hubUrl: "http://hub.local:8080", token: "operator-secret" };

  test("the library's own credential check (a TypeError) is a usage error about the token, not a network failure", () => {
    const e = hubLibraryError("pushing to org/x", new TypeError("Your access token must start with 'hf_'"), cfg);
    expect(e).toBeInstanceOf(HubError);
    expect(e.code).toBe("USAGE");
    expect(e.usage).toBe(true);
    expect(e.message).toBe("pushing to org/x: the token (--token / HF_TOKEN) cannot be used (Your access token must start with 'hf_')");
    expect(e.status).toBeUndefined();
  });

  test("other TypeErrors raised before sending are usage errors too", () => {
    const e = hubLibraryError("creating lonely", new TypeError('"lonely" is not a fully qualified repo name.'), cfg);
    expect(e.code).toBe("USAGE");
    expect(e.message).toBe('creating lonely: "lonely" is not a fully qualified repo name.');
  });

  test("fetch's network failures (TypeError with a cause) stay network failures, with the URL that failed", () => {
    const error = new TypeError("fetch failed", { cause: Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:8080"), { code: "ECONNREFUSED" }) });
    const e = hubLibraryError("pushing to org/x", error, cfg, new WeakMap([[error, "http://hub.local:8080/api/models/org/x/preupload/main?x=1"]]));
    expect(e.code).toBe("IO_ERROR");
    expect(e.message).toBe("pushing to org/x: the connection to http://hub.local:8080 failed or broke off (connect ECONNREFUSED 127.0.0.1:8080)");
    expect(e.url).toBe("http://hub.local:8080/api/models/org/x/preupload/main");
    const terminated = hubLibraryError("pushing to org/x", new TypeError("terminated", { cause: new Error("other side closed") }), cfg);
    expect(terminated.code).toBe("IO_ERROR");
    expect(terminated.message).toMatch(/failed or broke off \(other side closed\)$/);
  });

  test("HTTP answers keep status and URL; 401, 403 and 404 are usage errors, others IO_ERROR; the token is redacted", () => {
    const api = (statusCode: number) =>
      Object.assign(new Error(`denied for operator-secret\nsecond line. URL: http://hub.local:8080/api/repos/create`), {
        statusCode,
        url: "http://hub.local:8080/api/repos/create",
      });
    for (const [status, code] of [
      [401, "USAGE"],
      [403, "USAGE"],
      [404, "USAGE"],
      [500, "IO_ERROR"],
    ] as const) {
      const e = hubLibraryError("creating org/x", api(status), cfg);
      expect(e.status).toBe(status);
      expect(e.url).toBe("http://hub.local:8080/api/repos/create");
      expect(e.code).toBe(code);
      expect(e.message).not.toContain("operator-secret");
      expect(e.message).not.toMatch(/[\r\n]/);
    }
  });

  test("an answer the library could not use is an IO_ERROR, not a broken connection", () => {
    const e = hubLibraryError("pushing to org/x", new SyntaxError("Unexpected token < in JSON at position 0"), cfg);
    expect(e.code).toBe("IO_ERROR");
    expect(e.message).toBe("pushing to org/x: the Hub's answer could not be used (Unexpected token < in JSON at position 0)");
  });
});

describe("the token goes to the Hub's own origin only", () => {
  test("LFS uploads to another origin carry no Authorization header", async () => {
    const seen: Array<{ origin: "hub" | "storage"; method: string; path: string; authorization?: string }> = [];
    const weights = readFileSync(path.join(adapter, "adapter_model.safetensors"));
    const oid = createHash("sha256").update(weights).digest("hex");
    const storage = http.createServer((req, res) => {
      seen.push({ origin: "storage", method: req.method!, path: req.url!, authorization: req.headers.authorization });
      req.resume();
      req.on("end", () => res.writeHead(200).end());
    });
    await new Promise<void>((resolve) => storage.listen(0, "127.0.0.1", resolve));
    const storageUrl = `http://127.0.0.1:${(storage.address() as AddressInfo).port}`;
    const hub = http.createServer((req, res) => {
      const p = new URL(req.url ?? "/", "http://x").pathname;
      seen.push({ origin: "hub", method: req.method!, path: p, authorization: req.headers.authorization });
      req.resume();
      req.on("end", () => {
        const json = (status: number, body: unknown) => res.writeHead(status, { "Content-Type": "application/json" }).end(JSON.stringify(body));
        if (p === "/api/models/org/leak") return json(200, { id: "org/leak", sha: "a".repeat(40) });
        if (p.endsWith("/preupload/main")) {
          return json(200, {
            files: [
              { path: "adapter_config.json", uploadMode: "regular" },
              { path: "adapter_model.safetensors", uploadMode: "lfs" },
              { path: "README.md", uploadMode: "regular" },
            ],
          });
        }
        if (p === "/org/leak.git/info/lfs/objects/batch") {
          return json(200, {
            transfer: "basic",
            objects: [{ oid, size: weights.byteLength, actions: { upload: { href: `${storageUrl}/upload/${oid}`, header: {} } } }],
          });
        }
        if (p.endsWith("/commit/main"))
          return json(200, { success: true, commitOid: "b".repeat(40), commitUrl: `http://hub/org/leak/commit/${"b".repeat(40)}` });
        json(404, { error: "not here" });
      });
    });
    await new Promise<void>((resolve) => hub.listen(0, "127.0.0.1", resolve));
    const hubUrl = `http://127.0.0.1:${(hub.address() as AddressInfo).port}`;
    try {
      const pushed = await pushAdapter({ dir: adapter, repo: "org/leak", config: config(TOKEN, hubUrl) });
      expect(pushed.commitOid).toBe("b".repeat(40));
      expect(seen.filter((s) => s.origin === "storage").map((s) => `${s.method} ${s.path}`)).toEqual([`PUT /upload/${oid}`]);
      expect(seen.filter((s) => s.origin === "storage").every((s) => s.authorization === undefined)).toBe(true);
      const hubRequests = seen.filter((s) => s.origin === "hub");
      expect(hubRequests.length).toBeGreaterThanOrEqual(4);
      expect(hubRequests.every((s) => s.authorization === `Bearer ${TOKEN}`)).toBe(true);
    } finally {
      hub.closeAllConnections();
      storage.closeAllConnections();
      await Promise.all([new Promise((r) => hub.close(r)), new Promise((r) => storage.close(r))]);
    }
  });

  test("without a token no Authorization header is sent at all (not even `Bearer undefined`)", async () => {
    const authorizations: Array<string | undefined> = [];
    const hub = http.createServer((req, res) => {
      authorizations.push(req.headers.authorization);
      req.resume();
      req.on("end", () => res.writeHead(403, { "Content-Type": "application/json" }).end(JSON.stringify({ error: "writes need a token" })));
    });
    await new Promise<void>((resolve) => hub.listen(0, "127.0.0.1", resolve));
    try {
      const e = await failure(
        pushAdapter({ dir: adapter, repo: "org/anon", config: config(undefined, `http://127.0.0.1:${(hub.address() as AddressInfo).port}`) }),
      );
      expect(e.status).toBe(403);
      expect(authorizations.length).toBeGreaterThan(0);
      expect(authorizations.every((a) => a === undefined)).toBe(true);
    } finally {
      hub.closeAllConnections();
      await new Promise((r) => hub.close(r));
    }
  });
});
