import { stat } from "node:fs/promises";
import { LowrankError } from "@lowrank/core";
import { RepoCache } from "./hf-cache.js";
import { checkRepoId, type HubConfig } from "./hub-config.js";
import { hubFetch, hubResponseError } from "./hub-errors.js";
import { downloadBlob } from "./download-blob.js";

export interface PullParams {
  repo: string;
  revision?: string;
  /** fnmatch-style patterns (Python's allow_patterns): only matching files are pulled. */
  include?: string[];
  config: HubConfig;
  onFile?: (event: { path: string; size: number; cached: boolean }) => void;
}

export interface PullResult {
  repo: string;
  commit: string;
  snapshotDir: string;
  files: string[];
}

/** Python's fnmatch: `*` matches anything (slashes included), `?` one character, `[...]` a class. */
export function fnmatch(pattern: string, name: string): boolean {
  let re = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === "*") re += ".*";
    else if (c === "?") re += ".";
    else if (c === "[") {
      const end = pattern.indexOf("]", i + 1);
      if (end < 0) re += "\\[";
      else {
        re += `[${pattern.slice(i + 1, end).replace(/^!/, "^").replace(/\\/g, "\\\\")}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\/]/g, "\\$&");
  }
  return new RegExp(`^${re}$`, "s").test(name);
}

function unquote(etag: string | null): string | undefined {
  return etag?.replace(/^W\//, "").replace(/^"|"$/g, "") || undefined;
}

/**
 * Pulls a repo (or the files matching `include`) at a revision into the Python-compatible cache
 * and returns its snapshot folder. With HF_HUB_OFFLINE set it answers from the cache alone.
 * Files already cached are not downloaded again; interrupted downloads resume.
 * @throws LowrankError USAGE (not found, unauthorized, offline and not cached) or IO_ERROR.
 */
export async function pullRepo(params: PullParams): Promise<PullResult> {
  const repo = checkRepoId(params.repo);
  const revision = params.revision ?? "main";
  const { config } = params;
  const cache = new RepoCache(config.cacheDir, repo);
  if (config.offline) {
    const commit = await cache.readRef(revision);
    const dir = commit ? cache.snapshotDir(commit) : undefined;
    if (!dir || !(await stat(dir).catch(() => undefined))) {
      throw new LowrankError("USAGE", `${repo}@${revision} is not in the cache (${config.cacheDir}) and HF_HUB_OFFLINE is set`);
    }
    return { repo, commit: commit!, snapshotDir: dir, files: [] };
  }
  const what = `${repo}@${revision}`;
  const infoUrl = `${config.hubUrl}/api/models/${repo}/revision/${encodeURIComponent(revision)}`;
  const infoResponse = await hubFetch(infoUrl, { token: config.token }, what);
  if (!infoResponse.ok) throw await hubResponseError(infoResponse, what, config.token);
  const info = (await infoResponse.json()) as { sha?: string; siblings?: { rfilename: string }[] };
  const commit = info.sha;
  if (!commit || !/^[0-9a-f]{40}$/.test(commit)) throw new LowrankError("IO_ERROR", `${what}: the Hub's answer has no commit sha`);
  const names = (info.siblings ?? []).map((s) => s.rfilename).filter((name) => !params.include || params.include.some((p) => fnmatch(p, name)));
  for (const name of names) {
    if (name.split("/").some((part) => part === ".." || part === "") || name.startsWith("/") || name.includes("\\")) {
      throw new LowrankError("IO_ERROR", `${what}: the Hub lists an unsafe file path ${JSON.stringify(name)}; nothing was written for it`);
    }
  }
  for (const name of names) {
    const url = `${config.hubUrl}/${repo}/resolve/${commit}/${name.split("/").map(encodeURIComponent).join("/")}`;
    // As huggingface_hub: no redirect is followed, so an LFS file's X-Linked-Etag / X-Linked-Size
    // (on the Hub's redirect to its CDN) are read, not the CDN's own ETag.
    const head = await hubFetch(url, { method: "HEAD", redirect: "manual", token: config.token, headers: { "Accept-Encoding": "identity" } }, `${what}: ${name}`);
    const redirected = head.status >= 300 && head.status < 400;
    if (!head.ok && !redirected) throw await hubResponseError(head, `${what}: ${name}`, config.token);
    const linked = unquote(head.headers.get("x-linked-etag"));
    const etag = linked ?? unquote(head.headers.get("etag"));
    const size = Number(head.headers.get("x-linked-size") ?? head.headers.get("content-length"));
    if (!etag || !/^[0-9a-f]{40}([0-9a-f]{24})?$/.test(etag) || !Number.isSafeInteger(size)) {
      throw new LowrankError("IO_ERROR", `${what}: ${name}: the Hub gave no usable ETag / size`);
    }
    const cached = await cache.hasBlob(etag);
    await downloadBlob({ url, token: config.token, cache, etag, size, lfs: etag.length === 64, what: `${what}: ${name}` });
    await cache.link(commit, name, etag);
    params.onFile?.({ path: name, size, cached });
  }
  await cache.writeRef(revision, commit);
  return { repo, commit, snapshotDir: cache.snapshotDir(commit), files: names };
}
