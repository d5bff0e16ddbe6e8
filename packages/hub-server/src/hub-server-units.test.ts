import { describe, expect, it } from "vitest";
import { FileTree } from "./file-tree.js";
import { gitObjects } from "./git-objects.js";
import type { Commit, FileEntry } from "./hub-storage.js";
import { parseCommitPayload } from "./commit-payload.js";
import { parseRoute } from "./route-parser.js";
import { Caller } from "./token-auth.js";
import { UrlSigner } from "./url-signer.js";
import { branchNameProblem, repoIdProblem } from "./validation.js";

const entry = (content: string): FileEntry => ({ sha256: "0".repeat(64), size: content.length, lfs: false, gitOid: gitObjects.blobOid(Buffer.from(content)) });

describe("git object ids", () => {
  it("match git for blobs and trees", () => {
    // Reference values from `git hash-object` / `git write-tree` on the same files.
    const commit: Commit = {
      oid: "f".repeat(40),
      parent: null,
      message: "m",
      date: "2024-01-01T00:00:00.000Z",
      files: { "a.txt": entry("hello\n"), "sub/dir/b.bin": entry("x"), "sub/e": entry("") },
    };
    expect(commit.files["a.txt"]!.gitOid).toBe("ce013625030ba8dba906f756967f9e9ca394464a");
    expect(commit.files["sub/e"]!.gitOid).toBe("e69de29bb2d1d6434b8b29ae775ad8c2e48c5391");
    const tree = FileTree.of(commit);
    expect(tree.folderOid("sub/dir")).toBe("9711fc2a73618664c1275e405b8b21ae89589382");
    expect(tree.folderOid("sub")).toBe("bd98299c0283a1a27d73f2660e34f5c1aca86e36");
    expect(tree.folderOid("")).toBe("09e9d6ff68ba6adf5870e1e841c845db7b9527d6");
    expect(gitObjects.sha1OfJson({ b: 1, a: [{ d: 2, c: 3 }] })).toBe(gitObjects.sha1OfJson({ a: [{ c: 3, d: 2 }], b: 1 }));
  });
});

// File paths follow repoPathProblem, shared with the client: tested in @lowrank/hub (shared/repo-path.test.ts).
describe("validation", () => {
  it("accepts Hub-like ids and branch names and rejects unsafe ones", () => {
    for (const ok of ["org/adapter", "gpt2", "Org-1/model_v2.1"]) expect(repoIdProblem(ok)).toBeUndefined();
    for (const bad of ["../x", "a/b/c", "a..b", "a--b", "-x", "x.git", "api/x", "datasets/x", ""]) expect(repoIdProblem(bad)).toBeDefined();
    for (const bad of ["..", "a..b", "x/", "HEAD", "a".repeat(40).replace(/a/g, "b"), "-x"]) expect(branchNameProblem(bad)).toBeDefined();
    expect(branchNameProblem("feature/x")).toBeUndefined();
  });
});

describe("route parsing", () => {
  it("reads one- and two-segment repo ids and the dataset/space prefixes", () => {
    expect(parseRoute("/api/models/org/adapter/tree/main/sub")).toEqual([
      { name: "repo-api", action: "tree", repo: { type: "model", id: "org/adapter" }, rest: ["main", "sub"] },
    ]);
    expect(parseRoute("/api/models/gpt2/revision/main")[0]).toMatchObject({ action: "info", repo: { id: "gpt2" }, rest: ["main"] });
    expect(parseRoute("/datasets/org/data/resolve/main/a/b.csv")[0]).toEqual({
      name: "resolve",
      raw: false,
      repo: { type: "dataset", id: "org/data" },
      rest: ["main", "a", "b.csv"],
    });
    expect(parseRoute("/spaces/org/app.git/info/lfs/objects/batch")).toEqual([{ name: "lfs-batch", repo: { type: "space", id: "org/app" } }]);
    expect(parseRoute("/api/lfs/upload/model/org/a/" + "a".repeat(64))[0]).toMatchObject({ name: "lfs-object", direction: "upload", repo: { id: "org/a" } });
    expect(parseRoute("/api/models/org/a/refs").map((r) => ("action" in r ? r.action : r.name))).toEqual(["refs"]);
    // Ambiguous: repo "gpt2/refs" (info) or the refs of repo "gpt2"; the server picks the one that exists.
    expect(parseRoute("/api/models/gpt2/refs").map((r) => ("action" in r ? `${r.action}:${r.repo.id}` : r.name))).toEqual(["info:gpt2/refs", "refs:gpt2"]);
    expect(parseRoute("/favicon.ico")).toEqual([]);
  });

  it("reads listings, /api/validate-yaml and tag routes", () => {
    expect(parseRoute("/api/models")).toEqual([{ name: "list-repos", type: "model" }]);
    expect(parseRoute("/api/datasets/")).toEqual([{ name: "list-repos", type: "dataset" }]);
    expect(parseRoute("/api/validate-yaml")).toEqual([{ name: "validate-yaml" }]);
    expect(parseRoute("/api/models/org/a/tag/main")).toEqual([{ name: "repo-api", action: "tag", repo: { type: "model", id: "org/a" }, rest: ["main"] }]);
    expect(parseRoute("/api/datasets/org/d/tag/release%2F1")[0]).toMatchObject({
      action: "tag",
      repo: { type: "dataset", id: "org/d" },
      rest: ["release%2F1"],
    });
    expect(parseRoute("/api/models/org/a/tag")).toEqual([]);
  });

  it("sees only its own tables: Object.prototype names in a URL route nowhere", () => {
    for (const name of ["constructor", "__proto__", "toString", "hasOwnProperty"]) {
      expect(parseRoute(`/api/${name}`), name).toEqual([]);
      expect(parseRoute(`/api/lfs/upload/${name}/org/a/${"a".repeat(64)}`), name).toEqual([]);
      expect(
        parseRoute(`/api/models/org/a/${name}/x`).filter((r) => r.name === "repo-api" && r.action !== "info"),
        name,
      ).toEqual([]);
    }
  });
});

describe("commit payloads", () => {
  it("parses NDJSON and the legacy JSON form, and rejects bad input", () => {
    const nd = parseCommitPayload(
      Buffer.from(
        [
          JSON.stringify({ key: "header", value: { summary: "s", description: "d" } }),
          JSON.stringify({ key: "file", value: { path: "a.txt", content: Buffer.from("hi").toString("base64"), encoding: "base64" } }),
          JSON.stringify({ key: "deletedFolder", value: { path: "old/" } }),
        ].join("\n"),
      ),
    );
    expect(nd.summary).toBe("s");
    expect(nd.operations).toEqual([
      { kind: "file", path: "a.txt", content: Buffer.from("hi") },
      { kind: "deletedFolder", path: "old" },
    ]);
    const legacy = parseCommitPayload(
      Buffer.from(JSON.stringify({ summary: "s", lfsFiles: [{ path: "w.bin", algo: "sha256", oid: "a".repeat(64), size: 3 }] }, null, 2)),
    );
    expect(legacy.operations).toEqual([{ kind: "lfsFile", path: "w.bin", oid: "a".repeat(64), size: 3 }]);
    expect(() => parseCommitPayload(Buffer.from('{"key":"copyFile","value":{}}'))).toThrow(/Unknown commit operation/);
    expect(() => parseCommitPayload(Buffer.from('{"key":"header","value":{"parentCommit":"nope"}}'))).toThrow(/parentCommit/);
    expect(() => parseCommitPayload(Buffer.from("not json\n{}"))).toThrow(/line 1/);
  });
});

describe("authorization rules", () => {
  it("without tokens only loopback writes; with tokens a valid token is needed", () => {
    expect(() => new Caller(false, false, false, false).assertCanWrite()).toThrow(expect.objectContaining({ status: 403 }));
    expect(() => new Caller(true, false, false, false).assertCanWrite()).not.toThrow();
    expect(() => new Caller(true, true, false, false).assertCanWrite()).toThrow(expect.objectContaining({ status: 401 }));
    expect(() => new Caller(true, true, true, false).assertCredentialsValid()).toThrow(expect.objectContaining({ status: 401 }));
    expect(new Caller(false, true, true, true).canReadPrivate).toBe(true);
    expect(new Caller(false, false, false, false).canReadPrivate).toBe(false);
  });

  it("signed URLs are bound to method, path and parameters", () => {
    const signer = new UrlSigner();
    const url = new URL(`http://h/api/lfs/upload/model/a/x?${signer.sign("PUT", "/api/lfs/upload/model/a/x", { size: "5" })}`);
    expect(signer.verify("PUT", url)).toBe(true);
    expect(signer.verify("GET", url)).toBe(false);
    url.searchParams.set("size", "6");
    expect(signer.verify("PUT", url)).toBe(false);
    expect(new UrlSigner().verify("PUT", new URL(`http://h/p?${signer.sign("PUT", "/p", {})}`))).toBe(false);
  });
});
