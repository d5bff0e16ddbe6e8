import path from "node:path";
import { gitObjects } from "./git-objects.js";
import { HubHttpError } from "./hub-error.js";
import type { HubRequest } from "./hub-request.js";
import { resolveRevisionPath } from "./revision-path.js";
import { sendFile } from "./send-file.js";
import { assertRepoPath, type RepoRef } from "./validation.js";

function contentDisposition(filePath: string, attachment: boolean): string {
  const name = path.posix.basename(filePath);
  const ascii = name.replace(/[^\x20-\x7e]|["\\]/g, "_");
  return `${attachment ? "attachment" : "inline"}; filename*=UTF-8''${encodeURIComponent(name)}; filename="${ascii}"`;
}

/**
 * `GET|HEAD /{repo}/resolve/{rev}/{path}` (and `/raw/`, and the `datasets/` / `spaces/` prefixes):
 * the file's bytes with the headers the Hugging Face clients rely on: `ETag` (git blob id for
 * regular files, sha256 for LFS files), `X-Repo-Commit`, and for LFS files `X-Linked-Etag` and
 * `X-Linked-Size`. `/raw/` serves the LFS pointer instead of the content of LFS files.
 */
export async function resolveHandler(hr: HubRequest, repo: RepoRef, rest: string[], raw: boolean): Promise<void> {
  await hr.openRepo(repo, "read");
  const { revision, commit, path: filePath } = await resolveRevisionPath(hr.ctx.storage, repo, rest, { pathRequired: true });
  assertRepoPath(filePath);
  const entry = commit.files[filePath];
  if (!entry) throw HubHttpError.entryNotFound(filePath, revision);
  const headers: Record<string, string> = {
    "X-Repo-Commit": commit.oid,
    "Content-Disposition": contentDisposition(filePath, hr.flag("download")),
  };
  if (entry.lfs && raw) {
    const pointer = Buffer.from(gitObjects.lfsPointer(entry.sha256, entry.size), "utf8");
    await sendFile(hr, { source: { bytes: pointer }, size: pointer.byteLength, etag: entry.gitOid, headers });
    return;
  }
  if (entry.lfs) {
    headers["X-Linked-Etag"] = `"${entry.sha256}"`;
    headers["X-Linked-Size"] = String(entry.size);
  }
  const file = hr.ctx.storage.blobs.pathOf(entry.sha256);
  if ((await hr.ctx.storage.blobs.sizeOf(entry.sha256)) !== entry.size) {
    throw new HubHttpError(500, `Stored content of ${filePath} is missing or damaged (blob ${entry.sha256})`);
  }
  await sendFile(hr, { source: { file }, size: entry.size, etag: entry.lfs ? entry.sha256 : entry.gitOid, headers });
}
