import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHubServer, type HubServer } from "./start-hub-server.js";

const token = "hf_http_test_token";
const auth = { Authorization: `Bearer ${token}` };
const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const gitBlob = (b: Uint8Array) => createHash("sha1").update(`blob ${b.byteLength}\0`).update(b).digest("hex");
const ndjson = (lines: unknown[]) => lines.map((l) => JSON.stringify(l)).join("\n");

describe("hub server over plain HTTP (as huggingface_hub sends it)", () => {
  let dir: string;
  let server: HubServer;
  let url: string;
  const lfsBytes = new Uint8Array(randomBytes(100_000));
  const text = "0123456789abcdefghijklmnopqrstuvwxyz";

  const api = (p: string, init: RequestInit = {}) => fetch(`${url}${p}`, { ...init, headers: { ...auth, ...(init.headers as Record<string, string>) } });
  const commit = (repo: string, branch: string, lines: unknown[], headers: Record<string, string> = {}) =>
    api(`/api/models/${repo}/commit/${encodeURIComponent(branch)}`, {
      method: "POST",
      headers: { "Content-Type": "application/x-ndjson", ...headers },
      body: ndjson(lines),
    });

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "lowrank-hub-http-"));
    await writeFile(path.join(dir, "tokens"), `# team tokens\n${token}\n`);
    server = await startHubServer({ dir, port: 0 });
    url = server.url;
    // Python create_repo: name + organization + private.
    const created = await api("/api/repos/create", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ name: "adapter", organization: "org", private: false }),
    });
    expect(created.status).toBe(200);
    expect(await created.json()).toMatchObject({ url: `${url}/org/adapter`, name: "org/adapter" });
    // Python upload: preupload → LFS batch → PUT → NDJSON commit.
    const pre = await api("/api/models/org/adapter/preupload/main", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        files: [
          { path: "adapter_config.json", size: text.length, sample: Buffer.from(text).toString("base64") },
          { path: "weights.bin", size: lfsBytes.byteLength, sample: Buffer.from(lfsBytes.subarray(0, 512)).toString("base64") },
          { path: "notes.dat", size: 4, sample: Buffer.from([0xff, 0xfe, 0, 1]).toString("base64") },
        ],
      }),
    });
    const modes = (await pre.json()).files.map((f: { path: string; uploadMode: string }) => `${f.path}:${f.uploadMode}`);
    expect(modes).toEqual(["adapter_config.json:regular", "weights.bin:lfs", "notes.dat:lfs"]);
    const batch = await api("/org/adapter.git/info/lfs/objects/batch", {
      method: "POST",
      headers: { Accept: "application/vnd.git-lfs+json", "Content-Type": "application/vnd.git-lfs+json" },
      body: JSON.stringify({
        operation: "upload",
        transfers: ["basic", "multipart"],
        hash_algo: "sha256",
        objects: [{ oid: sha256(lfsBytes), size: lfsBytes.byteLength }],
      }),
    });
    expect(batch.headers.get("content-type")).toContain("application/vnd.git-lfs+json");
    const batchJson = await batch.json();
    expect(batchJson.transfer).toBe("basic");
    const put = await fetch(batchJson.objects[0].actions.upload.href, { method: "PUT", body: lfsBytes });
    expect(put.status).toBe(200);
    const done = await commit("org/adapter", "main", [
      { key: "header", value: { summary: "Upload adapter", description: "first" } },
      { key: "file", value: { path: "adapter_config.json", content: Buffer.from(text).toString("base64"), encoding: "base64" } },
      { key: "lfsFile", value: { path: "weights.bin", algo: "sha256", oid: sha256(lfsBytes), size: lfsBytes.byteLength } },
      { key: "file", value: { path: "sub/dir/empty.txt", content: "", encoding: "base64" } },
    ]);
    expect(done.status).toBe(200);
    expect(await done.json()).toMatchObject({ success: true, commitOid: expect.stringMatching(/^[0-9a-f]{40}$/), hookOutput: "" });
  });
  afterAll(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("GET /api/models/{repo}/revision/main returns sha and siblings", async () => {
    const res = await api("/api/models/org/adapter/revision/main?blobs=True");
    const info = await res.json();
    expect(info).toMatchObject({ id: "org/adapter", modelId: "org/adapter", private: false, tags: [], downloads: 0, likes: 0 });
    expect(info.sha).toMatch(/^[0-9a-f]{40}$/);
    expect(info.siblings.map((s: { rfilename: string }) => s.rfilename)).toEqual([".gitattributes", "adapter_config.json", "sub/dir/empty.txt", "weights.bin"]);
    expect(info.siblings[3]).toMatchObject({ size: lfsBytes.byteLength, lfs: { sha256: sha256(lfsBytes), size: lfsBytes.byteLength } });
    const head = await (await api("/api/models/org/adapter/revision/HEAD")).json();
    expect(head.sha).toBe(info.sha);
  });

  it("answers web pages from other origins (CORS): a preflight for GET with Authorization, then the file with its headers exposed", async () => {
    const preflight = await fetch(`${url}/org/adapter/resolve/main/adapter_config.json`, {
      method: "OPTIONS",
      headers: { Origin: "http://page.test", "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization" },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-origin")).toBe("*");
    expect(preflight.headers.get("access-control-allow-methods")).toBe("GET, HEAD");
    expect(preflight.headers.get("access-control-allow-headers")?.toLowerCase()).toContain("authorization");
    const res = await api("/org/adapter/resolve/main/adapter_config.json", { headers: { Origin: "http://page.test" } });
    expect(res.status).toBe(200);
    expect(res.headers.get("access-control-allow-origin")).toBe("*");
    expect(res.headers.get("access-control-expose-headers")).toContain("X-Repo-Commit");
    expect(await res.text()).toBe(text);
    // An OPTIONS without Access-Control-Request-Method is no preflight: an ordinary request, refused (405).
    const write = await fetch(`${url}/api/repos/create`, { method: "OPTIONS", headers: { Origin: "http://page.test" } });
    expect(write.status).toBe(405);
  });

  it("HEAD resolve returns X-Repo-Commit, ETag, Content-Length and no body", async () => {
    const info = await (await api("/api/models/org/adapter")).json();
    const res = await api("/org/adapter/resolve/main/adapter_config.json", { method: "HEAD", headers: { "Accept-Encoding": "identity" } });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-repo-commit")).toBe(info.sha);
    expect(res.headers.get("etag")).toBe(`"${gitBlob(Buffer.from(text))}"`);
    expect(res.headers.get("content-length")).toBe(String(text.length));
    expect(res.headers.get("accept-ranges")).toBe("bytes");
    expect(await res.text()).toBe("");
    const lfs = await api("/org/adapter/resolve/main/weights.bin", { method: "HEAD" });
    expect(lfs.headers.get("x-linked-etag")).toBe(`"${sha256(lfsBytes)}"`);
    expect(lfs.headers.get("x-linked-size")).toBe(String(lfsBytes.byteLength));
    expect(lfs.headers.get("etag")).toBe(`"${sha256(lfsBytes)}"`);
    const raw = await api("/org/adapter/raw/main/weights.bin");
    expect(await raw.text()).toContain(`oid sha256:${sha256(lfsBytes)}`);
  });

  it("serves ranges (206), rejects unsatisfiable ones (416) and honours If-None-Match (304)", async () => {
    const ranged = await api("/org/adapter/resolve/main/weights.bin", { headers: { Range: "bytes=10-19" } });
    expect(ranged.status).toBe(206);
    expect(ranged.headers.get("content-range")).toBe(`bytes 10-19/${lfsBytes.byteLength}`);
    expect(Buffer.from(await ranged.arrayBuffer()).equals(Buffer.from(lfsBytes.subarray(10, 20)))).toBe(true);
    const open = await api("/org/adapter/resolve/main/adapter_config.json", { headers: { Range: "bytes=30-" } });
    expect([open.status, await open.text()]).toEqual([206, text.slice(30)]);
    const suffix = await api("/org/adapter/resolve/main/adapter_config.json", { headers: { Range: "bytes=-3" } });
    expect(await suffix.text()).toBe("xyz");
    const bad = await api("/org/adapter/resolve/main/adapter_config.json", { headers: { Range: "bytes=500-600" } });
    expect(bad.status).toBe(416);
    expect(bad.headers.get("content-range")).toBe(`bytes */${text.length}`);
    const etag = (await api("/org/adapter/resolve/main/adapter_config.json", { method: "HEAD" })).headers.get("etag")!;
    const cached = await api("/org/adapter/resolve/main/adapter_config.json", { headers: { "If-None-Match": etag } });
    expect(cached.status).toBe(304);
    const empty = await api("/org/adapter/resolve/main/sub/dir/empty.txt", { headers: { Range: "bytes=0-0" } });
    expect([empty.status, empty.headers.get("content-range"), await empty.text()]).toEqual([200, "bytes */0", ""]);
  });

  it("answers missing repo / revision / file with 404 and the Hub error codes", async () => {
    const cases: Array<[string, string]> = [
      ["/org/nope/resolve/main/a.txt", "RepoNotFound"],
      ["/api/models/org/nope", "RepoNotFound"],
      ["/org/adapter/resolve/nobranch/adapter_config.json", "RevisionNotFound"],
      ["/api/models/org/adapter/revision/nobranch", "RevisionNotFound"],
      ["/api/models/org/adapter/tree/nobranch", "RevisionNotFound"],
      ["/org/adapter/resolve/main/missing.txt", "EntryNotFound"],
      ["/org/adapter/resolve/main/sub", "EntryNotFound"],
    ];
    for (const [p, code] of cases) {
      const res = await api(p);
      expect([p, res.status, res.headers.get("x-error-code")]).toEqual([p, 404, code]);
      expect(res.headers.get("x-error-message")).toBeTruthy();
      expect(Object.keys(await res.json())).toEqual(["error"]);
    }
    // Without credentials too, a missing repo is a 404 (only private repos answer 401).
    const anonymous = await fetch(`${url}/api/models/org/nope`);
    expect([anonymous.status, anonymous.headers.get("x-error-code")]).toEqual([404, "RepoNotFound"]);
    const unknown = await fetch(`${url}/api/nothing/here`);
    expect(unknown.status).toBe(404);
    expect((await unknown.json()).error).toMatch(/Not found/);
    expect((await api("/api/models/org/adapter/refs", { method: "PUT" })).status).toBe(405);
  });

  it("rejects unsafe paths in a commit before writing anything", async () => {
    const before = (await (await api("/api/models/org/adapter")).json()).sha;
    const blobsBefore = (await readdir(path.join(dir, "blobs", "sha256"))).length;
    for (const bad of ["../evil", "/abs", "a\\b", "a//b", "a/./b", "nul\0byte", ".git/config", "dir/"]) {
      const res = await commit("org/adapter", "main", [
        { key: "header", value: { summary: "evil" } },
        { key: "file", value: { path: "ok.txt", content: Buffer.from("ok").toString("base64"), encoding: "base64" } },
        { key: "file", value: { path: bad, content: Buffer.from("pwned").toString("base64"), encoding: "base64" } },
      ]);
      expect([bad, res.status]).toEqual([bad, 400]);
      expect((await res.json()).error).toMatch(/path/i);
    }
    expect((await (await api("/api/models/org/adapter")).json()).sha).toBe(before);
    expect((await readdir(path.join(dir, "blobs", "sha256"))).length).toBe(blobsBefore);
    await expect(stat(path.join(dir, "..", "evil"))).rejects.toThrow();
    await expect(stat("/abs")).rejects.toThrow();
  });

  it("refuses LFS uploads whose hash or size do not match, and commits of objects never uploaded", async () => {
    const bytes = new Uint8Array(randomBytes(2048));
    const batch = await (
      await api("/org/adapter.git/info/lfs/objects/batch", {
        method: "POST",
        headers: { "Content-Type": "application/vnd.git-lfs+json" },
        body: JSON.stringify({
          operation: "upload",
          objects: [
            { oid: sha256(bytes), size: bytes.byteLength },
            { oid: sha256(lfsBytes), size: lfsBytes.byteLength },
          ],
        }),
      })
    ).json();
    expect(batch.objects[1].actions).toBeUndefined();
    const href: string = batch.objects[0].actions.upload.href;
    const wrong = new Uint8Array(bytes);
    wrong[0]! ^= 1;
    const mismatch = await fetch(href, { method: "PUT", body: wrong });
    expect(mismatch.status).toBe(400);
    expect((await mismatch.json()).error).toMatch(/sha256 mismatch/);
    expect((await fetch(href, { method: "PUT", body: bytes.subarray(1) })).status).toBe(400);
    expect((await fetch(href.replace(/sig=[^&]+/, "sig=forged"), { method: "PUT", body: bytes })).status).toBe(403);
    await expect(stat(path.join(dir, "blobs", "sha256", sha256(bytes)))).rejects.toThrow();
    const res = await commit("org/adapter", "main", [
      { key: "header", value: { summary: "x" } },
      { key: "lfsFile", value: { path: "never.bin", algo: "sha256", oid: sha256(bytes), size: bytes.byteLength } },
    ]);
    expect(res.status).toBe(400);
    expect((await res.json()).error).toMatch(/has not been uploaded/);
    const download = await (
      await api("/org/adapter.git/info/lfs/objects/batch", {
        method: "POST",
        body: JSON.stringify({ operation: "download", objects: [{ oid: sha256(lfsBytes), size: lfsBytes.byteLength }] }),
      })
    ).json();
    const got = await fetch(download.objects[0].actions.download.href);
    expect(Buffer.from(await got.arrayBuffer()).equals(Buffer.from(lfsBytes))).toBe(true);
  });

  it("paths-info accepts the form encoding of huggingface_hub and the JSON of @huggingface/hub", async () => {
    const form = new URLSearchParams([
      ["paths", "weights.bin"],
      ["paths", "sub"],
      ["paths", "missing"],
      ["expand", "True"],
    ]);
    const res = await api("/api/models/org/adapter/paths-info/main", { method: "POST", body: form });
    const entries = await res.json();
    expect(entries.map((e: { path: string; type: string }) => `${e.type}:${e.path}`)).toEqual(["file:weights.bin", "directory:sub"]);
    expect(entries[0]).toMatchObject({ oid: expect.stringMatching(/^[0-9a-f]{40}$/), size: lfsBytes.byteLength, lfs: { oid: sha256(lfsBytes) } });
    expect(entries[1].lastCommit).toMatchObject({ title: "Upload adapter", id: expect.stringMatching(/^[0-9a-f]{40}$/) });
    const json = await api("/api/models/org/adapter/paths-info/main", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ paths: ["adapter_config.json"] }),
    });
    expect((await json.json())[0]).toMatchObject({ type: "file", oid: gitBlob(Buffer.from(text)), size: text.length });
  });

  it("lists trees with direct children, recursion and Link paging", async () => {
    const top = await (await api("/api/models/org/adapter/tree/main")).json();
    expect(top.map((e: { path: string }) => e.path)).toEqual(["sub", ".gitattributes", "adapter_config.json", "weights.bin"]);
    expect((await (await api("/api/models/org/adapter/tree/main/sub")).json()).map((e: { path: string }) => e.path)).toEqual(["sub/dir"]);
    const seen: string[] = [];
    let next: string | undefined = `${url}/api/models/org/adapter/tree/main?recursive=1&limit=2`;
    while (next) {
      const res: Response = await fetch(next, { headers: auth });
      seen.push(...(await res.json()).map((e: { path: string }) => e.path));
      next = /<([^>]+)>;\s*rel="next"/.exec(res.headers.get("link") ?? "")?.[1];
    }
    expect(seen).toEqual(["sub", "sub/dir", "sub/dir/empty.txt", ".gitattributes", "adapter_config.json", "weights.bin"]);
  });

  it("manages branches: refs, branch creation, commits to an encoded branch, deletion, parentCommit", async () => {
    expect((await api("/api/models/org/adapter/branch/dev", { method: "POST", body: "{}" })).status).toBe(200);
    expect((await api("/api/models/org/adapter/branch/dev", { method: "POST", body: "{}" })).status).toBe(409);
    const main = (await (await api("/api/models/org/adapter")).json()).sha;
    const c = await commit("org/adapter", "feature/x", [
      { key: "header", value: { summary: "feature work", parentCommit: main } },
      { key: "file", value: { path: "feature.txt", content: Buffer.from("f").toString("base64"), encoding: "base64" } },
      { key: "deletedFolder", value: { path: "sub/" } },
    ]);
    expect(c.status).toBe(200);
    const refs = await (await api("/api/models/org/adapter/refs")).json();
    expect(refs.branches.map((b: { name: string }) => b.name)).toEqual(["dev", "feature/x", "main"]);
    expect(refs.branches[2]).toMatchObject({ ref: "refs/heads/main", targetCommit: main });
    expect(await (await api("/org/adapter/resolve/feature%2Fx/feature.txt")).text()).toBe("f");
    const unencoded = await (await api("/api/models/org/adapter/tree/feature/x")).json();
    expect(unencoded.map((e: { path: string }) => e.path)).toContain("feature.txt");
    expect((await api("/org/adapter/resolve/main/feature.txt")).status).toBe(404);
    const stale = await commit("org/adapter", "feature/x", [{ key: "header", value: { summary: "stale", parentCommit: main } }]);
    expect(stale.status).toBe(412);
    const gone = await commit("org/adapter", "dev", [
      { key: "header", value: { summary: "rm" } },
      { key: "deletedFile", value: { path: "nope.txt" } },
    ]);
    expect([gone.status, gone.headers.get("x-error-code")]).toEqual([404, "EntryNotFound"]);
    const history = await (await api("/api/models/org/adapter/commits/feature%2Fx")).json();
    expect(history.map((h: { title: string }) => h.title)).toEqual(["feature work", "Upload adapter", "initial commit"]);
    expect((await api("/api/models/org/adapter/branch/dev", { method: "DELETE" })).status).toBe(200);
    expect((await api("/api/models/org/adapter/branch/main", { method: "DELETE" })).status).toBe(400);
  });

  it("serializes concurrent commits: with the same parentCommit exactly one wins", async () => {
    const head = (await (await api("/api/models/org/adapter")).json()).sha;
    const results = await Promise.all(
      [1, 2, 3, 4].map((i) =>
        commit("org/adapter", "main", [
          { key: "header", value: { summary: `race ${i}`, parentCommit: head } },
          { key: "file", value: { path: `race-${i}.txt`, content: Buffer.from(String(i)).toString("base64"), encoding: "base64" } },
        ]),
      ),
    );
    expect(results.map((r) => r.status).sort()).toEqual([200, 412, 412, 412]);
    const unguarded = await Promise.all(
      [5, 6, 7].map((i) =>
        commit("org/adapter", "main", [
          { key: "header", value: { summary: `free ${i}` } },
          { key: "file", value: { path: `free-${i}.txt`, content: Buffer.from(String(i)).toString("base64"), encoding: "base64" } },
        ]),
      ),
    );
    expect(unguarded.map((r) => r.status)).toEqual([200, 200, 200]);
    const files = (await (await api("/api/models/org/adapter")).json()).siblings.map((s: { rfilename: string }) => s.rfilename);
    expect(files.filter((f: string) => f.startsWith("free-"))).toEqual(["free-5.txt", "free-6.txt", "free-7.txt"]);
    expect(files.filter((f: string) => f.startsWith("race-"))).toHaveLength(1);
  });

  it("re-reads the tokens file when it changes", async () => {
    const rotated = "hf_rotated_token_with_another_length";
    expect((await fetch(`${url}/api/whoami-v2`, { headers: { Authorization: `Bearer ${rotated}` } })).status).toBe(401);
    await writeFile(path.join(dir, "tokens"), `${token}\n${rotated}\n`);
    expect((await fetch(`${url}/api/whoami-v2`, { headers: { Authorization: `Bearer ${rotated}` } })).status).toBe(200);
  });

  it("whoami and token checks", async () => {
    expect(await (await api("/api/whoami-v2")).json()).toMatchObject({ type: "user", name: "lowrank", auth: { accessToken: { role: "write" } } });
    expect((await fetch(`${url}/api/whoami-v2`)).status).toBe(401);
    const wrong = await fetch(`${url}/api/whoami-v2`, { headers: { Authorization: "Bearer hf_nope" } });
    expect(wrong.status).toBe(401);
    expect(JSON.stringify(await wrong.json())).not.toContain("hf_nope");
    const write = await fetch(`${url}/api/models/org/adapter/commit/main`, {
      method: "POST",
      headers: { "Content-Type": "application/x-ndjson" },
      body: ndjson([{ key: "header", value: { summary: "x" } }]),
    });
    expect(write.status).toBe(401);
  });
});

describe("hub server without tokens", () => {
  it("accepts writes from loopback and keeps private repos readable there", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "lowrank-hub-open-"));
    const server = await startHubServer({ dir });
    try {
      const created = await fetch(`${server.url}/api/repos/create`, { method: "POST", body: JSON.stringify({ name: "solo", type: "dataset", private: true }) });
      expect(created.status).toBe(200);
      expect((await created.json()).url).toBe(`${server.url}/datasets/solo`);
      const info = await fetch(`${server.url}/api/datasets/solo`);
      expect((await info.json()).private).toBe(true);
      const res = await fetch(`${server.url}/datasets/solo/resolve/main/.gitattributes`);
      expect(await res.text()).toContain("*.safetensors filter=lfs");
    } finally {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
