import { stat } from "node:fs/promises";
import { LowrankError } from "@lowrank/core";
import { RepoCache } from "./hf-cache.js";
import { checkRepoId, type HubConfig } from "./hub-config.js";
import { hubFetch, hubResponseError } from "./hub-errors.js";
import { downloadBlob } from "./download-blob.js";
import { repoPathProblem } from "../shared/repo-path.js";

export interface PullParams {
  repo: string;
  revision?: string;
  /** fnmatch-style patterns (Python's allow_patterns): only matching files are pulled. */
  include?: string[];
  config: HubConfig;
  /** Called once per file, after it is in the snapshot folder. */
  onFile?: (event: { path: string; size: number; cached: boolean }) => void;
  /**
   * Download progress of the file being pulled: `bytes` of `total` are on disk (a resumed download
   * starts from what was already there; it starts over at 0 if the Hub ignores the resume). Called
   * as data arrives, and at least once per file with `bytes === total` when it is complete (also
   * for a file already in the cache), before that file's `onFile`.
   */
  onProgress?: (event: PullProgress) => void;
}

/** One progress report of {@link pullRepo}. */
export interface PullProgress {
  path: string;
  bytes: number;
  total: number;
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
    const c = pattern[i]!;
    if (c === "*") re += ".*";
    else if (c === "?") re += ".";
    else if (c === "[") {
      const end = pattern.indexOf("]", i + 1);
      if (end < 0) re += "\\[";
      else {
        re += `[${pattern
          .slice(i + 1, end)
          .replace(/^!/, "^")
          .replace(/\\/g, "\\\\")}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\/]/g, "\\$&");
  }
  return new RegExp(`^${re}$`, "s").test(name);
}

function unquote(etag: string | null): string | undefined {
  return etag?.replace(/^W\//, "").replace(/^"|"$/g, "") || undefined;
}

/** Repo-info answers larger than this are refused (a hostile Hub must not exhaust memory). */
const MAX_INFO_BYTES = 64 * 1024 * 1024;

/** A body as text, refused when it exceeds `limit` bytes (read no further). */
async function readLimited(response: Response, limit: number, what: string): Promise<string> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of (response.body ?? []) as unknown as AsyncIterable<Uint8Array>) {
    total += chunk.byteLength;
    if (total > limit) {
      await response.body?.cancel().catch(() => undefined);
      throw new LowrankError("IO_ERROR", `${what}: the Hub's answer is larger than ${limit} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** The commit and file names of a repo-info answer; a one-line IO_ERROR when it is not one. */
async function readRepoInfo(response: Response, what: string): Promise<{ commit: string; listed: string[] }> {
  const text = await readLimited(response, MAX_INFO_BYTES, what);
  let info: unknown;
  try {
    info = JSON.parse(text);
  } catch (error) {
    throw new LowrankError("IO_ERROR", `${what}: the Hub's answer is not JSON (${((error as Error).message.split("\n")[0] ?? "").slice(0, 100)})`);
  }
  const { sha, siblings } = (typeof info === "object" && info !== null ? info : {}) as { sha?: unknown; siblings?: unknown };
  if (typeof sha !== "string" || !/^[0-9a-f]{40}$/.test(sha)) throw new LowrankError("IO_ERROR", `${what}: the Hub's answer has no commit sha`);
  const list = siblings ?? [];
  if (!Array.isArray(list) || !list.every((s) => typeof (s as { rfilename?: unknown } | null)?.rfilename === "string")) {
    throw new LowrankError("IO_ERROR", `${what}: the Hub's answer has no list of files (\`siblings\` with \`rfilename\` strings)`);
  }
  return { commit: sha, listed: list.map((s) => (s as { rfilename: string }).rfilename) };
}

/** Refuses unsafe paths, and paths listed twice or both as a file and as a folder. */
function checkListedPaths(names: readonly string[], what: string): void {
  const files = new Set<string>();
  for (const name of names) {
    if (repoPathProblem(name) !== undefined || /^[A-Za-z]:/.test(name)) {
      throw new LowrankError("IO_ERROR", `${what}: the Hub lists an unsafe file path ${JSON.stringify(name)}; nothing was written`);
    }
    if (files.has(name)) throw new LowrankError("IO_ERROR", `${what}: the Hub lists ${JSON.stringify(name)} twice; nothing was written`);
    files.add(name);
  }
  for (const name of names) {
    const parts = name.split("/");
    for (let i = 1; i < parts.length; i++) {
      const folder = parts.slice(0, i).join("/");
      if (files.has(folder))
        throw new LowrankError("IO_ERROR", `${what}: the Hub lists ${JSON.stringify(folder)} both as a file and as a folder; nothing was written`);
    }
  }
}

/** A revision is a branch, tag or commit name: it names a file under refs/, so it may not climb out. */
function checkRevision(revision: string): string {
  if (
    revision === "" ||
    revision.length > 256 ||
    /[\\\0]/.test(revision) ||
    revision.startsWith("/") ||
    revision.split("/").some((p) => p === "" || p === "." || p === "..")
  ) {
    throw new LowrankError("USAGE", `revision ${JSON.stringify(revision)} is not a branch, tag or commit name`);
  }
  return revision;
}

/**
 * Pulls a repo (or the files matching `include`) at a revision into the Python-compatible cache
 * and returns its snapshot folder. With HF_HUB_OFFLINE set it answers from the cache alone.
 * Files already cached are not downloaded again; interrupted downloads resume.
 * Any token the Hub accepts works (a self-hosted Hub's need not start with `hf_`); it is sent to
 * `config.hubUrl` only (fetch drops it on a redirect to another origin).
 * @throws HubError USAGE (401/403/404 with `status` and `url`; a token that cannot be sent in a
 * header), HubError IO_ERROR (other statuses, the Hub unreachable), LowrankError USAGE (offline and
 * not cached, a bad revision) or IO_ERROR (unusable answers, broken downloads).
 */
export async function pullRepo(params: PullParams): Promise<PullResult> {
  const repo = checkRepoId(params.repo);
  const revision = checkRevision(params.revision ?? "main");
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
  const { commit, listed } = await readRepoInfo(infoResponse, what);
  // Every path the Hub lists is checked before anything is written: a hostile Hub must not make
  // the cache write outside the snapshot folder (`..`, absolute paths, backslashes, drive letters).
  checkListedPaths(listed, what);
  const names = listed.filter((name) => !params.include || params.include.some((p) => fnmatch(p, name)));
  for (const name of names) {
    const url = `${config.hubUrl}/${repo}/resolve/${commit}/${name.split("/").map(encodeURIComponent).join("/")}`;
    // As huggingface_hub: no redirect is followed, so an LFS file's X-Linked-Etag / X-Linked-Size
    // (on the Hub's redirect to its CDN) are read, not the CDN's own ETag.
    const head = await hubFetch(
      url,
      { method: "HEAD", redirect: "manual", token: config.token, headers: { "Accept-Encoding": "identity" } },
      `${what}: ${name}`,
    );
    const redirected = head.status >= 300 && head.status < 400;
    if (!head.ok && !redirected) throw await hubResponseError(head, `${what}: ${name}`, config.token);
    const linked = unquote(head.headers.get("x-linked-etag"));
    const etag = linked ?? unquote(head.headers.get("etag"));
    const size = Number(head.headers.get("x-linked-size") ?? head.headers.get("content-length"));
    if (!etag || !/^[0-9a-f]{40}([0-9a-f]{24})?$/.test(etag) || !Number.isSafeInteger(size)) {
      throw new LowrankError("IO_ERROR", `${what}: ${name}: the Hub gave no usable ETag / size`);
    }
    const cached = await cache.hasBlob(etag);
    let reported = -1;
    const onBytes =
      params.onProgress &&
      ((bytes: number, total: number) => {
        reported = bytes;
        params.onProgress!({ path: name, bytes, total });
      });
    await downloadBlob({ url, token: config.token, cache, etag, size, lfs: etag.length === 64, what: `${what}: ${name}`, onBytes });
    await cache.link(commit, name, etag);
    if (reported !== size) params.onProgress?.({ path: name, bytes: size, total: size });
    params.onFile?.({ path: name, size, cached });
  }
  await cache.writeRef(revision, commit);
  return { repo, commit, snapshotDir: cache.snapshotDir(commit), files: names };
}
