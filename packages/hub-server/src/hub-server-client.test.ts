import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { createRepo, downloadFile, fileDownloadInfo, listFiles, modelInfo, pathsInfo, snapshotDownload, uploadFiles, whoAmI } from "@huggingface/hub";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { startHubServer, type HubServer } from "./start-hub-server.js";

const accessToken = "hf_lowrank_test_token";
const repo = "org/adapter";
const config = JSON.stringify({ peft_type: "LORA", r: 8, lora_alpha: 16 });
const weights = new Uint8Array(randomBytes(64 * 1024));

describe("hub server with the @huggingface/hub client", () => {
  let dir: string;
  let server: HubServer;
  let hubUrl: string;
  let firstCommit: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "lowrank-hub-"));
    server = await startHubServer({ dir, port: 0, tokens: [accessToken] });
    hubUrl = server.url;
  });
  afterAll(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("creates a repo and uploads a regular and an LFS file", async () => {
    const created = await createRepo({ repo, accessToken, hubUrl });
    expect(created.repoUrl).toBe(`${hubUrl}/${repo}`);
    await expect(createRepo({ repo, accessToken, hubUrl })).rejects.toThrow(/already/);
    const result = await uploadFiles({
      repo,
      accessToken,
      hubUrl,
      files: [
        { path: "adapter_config.json", content: new Blob([config]) },
        { path: "adapter_model.safetensors", content: new Blob([weights]) },
      ],
    });
    expect(result?.commit.oid).toMatch(/^[0-9a-f]{40}$/);
    firstCommit = result!.commit.oid;
    const sha = createHash("sha256").update(weights).digest("hex");
    // The .safetensors went the LFS way: its blob is content-addressed and the entry has lfs info.
    expect((await readFile(path.join(dir, "blobs", "sha256", sha))).equals(Buffer.from(weights))).toBe(true);
    const [info] = await pathsInfo({ repo, hubUrl, accessToken, paths: ["adapter_model.safetensors"], expand: true });
    expect(info).toBeDefined();
    expect(info!.lfs).toEqual({ oid: sha, size: weights.byteLength, pointerSize: expect.any(Number) });
    expect(info!.lastCommit?.id).toBe(firstCommit);
  });

  it("downloads identical bytes and lists files", async () => {
    const blob = await downloadFile({ repo, path: "adapter_model.safetensors", hubUrl, accessToken });
    expect(Buffer.from(await blob!.arrayBuffer()).equals(Buffer.from(weights))).toBe(true);
    const text = await downloadFile({ repo, path: "adapter_config.json", hubUrl, accessToken });
    expect(await text!.text()).toBe(config);
    const files = [];
    for await (const f of listFiles({ repo, hubUrl, accessToken, recursive: true })) files.push(f.path);
    expect(files.sort()).toEqual([".gitattributes", "adapter_config.json", "adapter_model.safetensors"]);
    const info = await fileDownloadInfo({ repo, path: "adapter_model.safetensors", hubUrl, accessToken });
    expect(info?.size).toBe(weights.byteLength);
    expect(info?.etag).toBe(`"${createHash("sha256").update(weights).digest("hex")}"`);
    expect(await fileDownloadInfo({ repo, path: "missing.bin", hubUrl, accessToken })).toBeNull();
    expect((await whoAmI({ accessToken, hubUrl })).name).toBe("lowrank");
  });

  it("snapshotDownload fills the HF cache layout with identical bytes", async () => {
    const cacheDir = path.join(dir, "cache");
    vi.spyOn(console, "debug").mockImplementation(() => undefined); // the client logs each download
    const folder = await snapshotDownload({ repo, hubUrl, accessToken, cacheDir });
    expect(folder).toBe(path.join(cacheDir, "models--org--adapter", "snapshots", firstCommit));
    expect(await readFile(path.join(folder, "adapter_config.json"), "utf8")).toBe(config);
    expect((await readFile(path.join(folder, "adapter_model.safetensors"))).equals(Buffer.from(weights))).toBe(true);
    expect(await readFile(path.join(cacheDir, "models--org--adapter", "refs", "main"), "utf8")).toBe(firstCommit);
  });

  it("a second commit moves main while the old commit still resolves the old bytes", async () => {
    const updated = JSON.stringify({ peft_type: "LORA", r: 16 });
    const result = await uploadFiles({ repo, accessToken, hubUrl, files: [{ path: "adapter_config.json", content: new Blob([updated]) }] });
    const second = result!.commit.oid;
    expect(second).not.toBe(firstCommit);
    const info = await modelInfo({ name: repo, hubUrl, accessToken, additionalFields: ["sha"] });
    expect(info.sha).toBe(second);
    expect(await (await downloadFile({ repo, path: "adapter_config.json", hubUrl, accessToken }))!.text()).toBe(updated);
    const old = await fetch(`${hubUrl}/${repo}/resolve/${firstCommit}/adapter_config.json`, { headers: { Authorization: `Bearer ${accessToken}` } });
    expect(old.status).toBe(200);
    expect(old.headers.get("x-repo-commit")).toBe(firstCommit);
    expect(await old.text()).toBe(config);
    // parentCommit that is not the head is refused and main does not move.
    await expect(
      uploadFiles({ repo, accessToken, hubUrl, parentCommit: firstCommit, files: [{ path: "x.txt", content: new Blob(["x"]) }] }),
    ).rejects.toMatchObject({ statusCode: 412 });
    expect((await modelInfo({ name: repo, hubUrl, accessToken, additionalFields: ["sha"] })).sha).toBe(second);
  });

  it("private repos need a token to read; a wrong token cannot write", async () => {
    await createRepo({ repo: "org/secret", accessToken, hubUrl, private: true });
    await uploadFiles({ repo: "org/secret", accessToken, hubUrl, files: [{ path: "a.txt", content: new Blob(["secret"]) }] });
    const anonymous = await fetch(`${hubUrl}/api/models/org/secret`);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get("x-error-code")).toBe("RepoNotFound");
    await expect(downloadFile({ repo: "org/secret", path: "a.txt", hubUrl })).rejects.toMatchObject({ statusCode: 401 });
    expect(await (await downloadFile({ repo: "org/secret", path: "a.txt", hubUrl, accessToken }))!.text()).toBe("secret");
    await expect(uploadFiles({ repo, accessToken: "hf_wrong", hubUrl, files: [{ path: "b.txt", content: new Blob(["b"]) }] })).rejects.toMatchObject({
      statusCode: 401,
    });
    await expect(createRepo({ repo: "org/other", accessToken: "hf_wrong", hubUrl })).rejects.toMatchObject({ statusCode: 401 });
    const noToken = await fetch(`${hubUrl}/api/repos/create`, { method: "POST", body: JSON.stringify({ name: "org/other" }) });
    expect(noToken.status).toBe(401);
  });

  it("keeps everything across a restart on the same folder", async () => {
    const before = await modelInfo({ name: repo, hubUrl, accessToken, additionalFields: ["sha"] });
    await server.close();
    server = await startHubServer({ dir, port: 0, tokens: [accessToken] });
    hubUrl = server.url;
    const after = await modelInfo({ name: repo, hubUrl, accessToken, additionalFields: ["sha"] });
    expect(after.sha).toBe(before.sha);
    const blob = await downloadFile({ repo, path: "adapter_model.safetensors", hubUrl, accessToken });
    expect(Buffer.from(await blob!.arrayBuffer()).equals(Buffer.from(weights))).toBe(true);
    expect(await (await downloadFile({ repo: "org/secret", path: "a.txt", hubUrl, accessToken }))!.text()).toBe("secret");
  });

  it("works for datasets, and dedups LFS objects already uploaded to the repo", async () => {
    const ds = { type: "dataset" as const, name: "org/data" };
    await createRepo({ repo: ds, accessToken, hubUrl });
    const rows = new Uint8Array(randomBytes(4096));
    await uploadFiles({ repo: ds, accessToken, hubUrl, files: [{ path: "data/train.parquet", content: new Blob([rows]) }] });
    await uploadFiles({ repo: ds, accessToken, hubUrl, files: [{ path: "data/copy.parquet", content: new Blob([rows]) }] });
    const files = [];
    for await (const f of listFiles({ repo: ds, hubUrl, accessToken, recursive: true })) files.push(`${f.type}:${f.path}`);
    expect(files).toEqual(["directory:data", "file:data/copy.parquet", "file:data/train.parquet", "file:.gitattributes"]);
    const blob = await downloadFile({ repo: ds, path: "data/copy.parquet", hubUrl, accessToken });
    expect(Buffer.from(await blob!.arrayBuffer()).equals(Buffer.from(rows))).toBe(true);
  });
});
