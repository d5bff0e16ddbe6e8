import { repoPathProblem } from "@lowrank/hub";
import { applyChanges, type FileChange } from "./apply-changes.js";
import { parseCommitPayload } from "./commit-payload.js";
import { gitObjects } from "./git-objects.js";
import { HubHttpError } from "./hub-error.js";
import type { HubRequest } from "./hub-request.js";
import { branchNameProblem, isCommitOid, repoLabel, repoUrlPrefix, type RepoRef } from "./validation.js";

/** Files at least this large are uploaded through LFS. */
const LFS_SIZE_THRESHOLD = 10 * 1024 * 1024;
const LFS_EXTENSIONS = [".safetensors", ".bin", ".onnx", ".pt", ".pth", ".h5", ".msgpack", ".gguf", ".ckpt", ".npz", ".parquet", ".arrow"];
const MAX_PREUPLOAD_FILES = 10_000;

/** "lfs" for large, weight-like or binary (not UTF-8, or containing NUL) files, else "regular". */
function uploadMode(path: string, size: number, sample: Buffer): "lfs" | "regular" {
  if (size >= LFS_SIZE_THRESHOLD) return "lfs";
  const lower = path.toLowerCase();
  if (LFS_EXTENSIONS.some((ext) => lower.endsWith(ext))) return "lfs";
  if (sample.includes(0)) return "lfs";
  try {
    // A sample cut from a longer file may end inside a multi-byte character: allow that (stream mode).
    new TextDecoder("utf-8", { fatal: true }).decode(sample, { stream: sample.byteLength < size });
    return "regular";
  } catch {
    return "lfs";
  }
}

function branchFrom(rest: string[]): string {
  let branch: string;
  try {
    branch = rest.map((s) => decodeURIComponent(s)).join("/");
  } catch {
    throw HubHttpError.badRequest("Malformed percent-encoding in revision");
  }
  if (isCommitOid(branch)) throw HubHttpError.badRequest("Commits must target a branch, not a commit id");
  const problem = branchNameProblem(branch);
  if (problem) throw HubHttpError.badRequest(problem);
  return branch;
}

/** Handlers of `/preupload` and `/commit`. */
export const commitHandlers = {
  /**
   * `POST /api/{type}s/{repo}/preupload/{rev}` with `{ files: [{ path, size, sample }] }` →
   * `{ files: [{ path, uploadMode, shouldIgnore: false, oid? }] }`; `oid` is the current remote
   * id of the path (sha256 for LFS, git blob id otherwise) so clients can skip unchanged files.
   */
  async preupload(hr: HubRequest, repo: RepoRef, rest: string[]): Promise<void> {
    await hr.openRepo(repo, "write");
    if (hr.flag("create_pr")) throw HubHttpError.badRequest("Pull requests are not supported by this server");
    const branch = branchFrom(rest);
    const body = (await hr.readJson(32 * 1024 * 1024)) as { files?: unknown };
    if (!body || !Array.isArray(body.files)) throw HubHttpError.badRequest('"files" must be a list of { path, size, sample }');
    if (body.files.length > MAX_PREUPLOAD_FILES) throw HubHttpError.badRequest(`Too many files (max ${MAX_PREUPLOAD_FILES})`);
    const commit = (await hr.ctx.storage.resolveRevision(repo, branch)) ?? (await hr.ctx.storage.resolveRevision(repo, "main"));
    const files = (body.files as Array<Record<string, unknown>>).map((file) => {
      const problem = repoPathProblem(file?.path);
      if (problem) throw HubHttpError.badRequest(problem);
      const path = file.path as string;
      const size = Number(file.size);
      if (!Number.isSafeInteger(size) || size < 0) throw HubHttpError.badRequest(`Invalid size for ${path}`);
      const sample = Buffer.from(typeof file.sample === "string" ? file.sample : "", "base64");
      const existing = commit?.files[path];
      const mode = uploadMode(path, size, sample);
      const oid = existing ? (existing.lfs ? existing.sha256 : existing.gitOid) : undefined;
      return { path, uploadMode: mode, shouldIgnore: false, ...(oid ? { oid } : {}) };
    });
    hr.sendJson(200, { files, commitOid: commit?.oid });
  },

  /**
   * `POST /api/{type}s/{repo}/commit/{branch}`: NDJSON (or legacy JSON) commit. All paths are
   * validated and LFS objects checked before anything is written; the branch moves only if
   * `parentCommit` (when given) is its head (else 412). A missing branch starts from main's head.
   */
  async commit(hr: HubRequest, repo: RepoRef, rest: string[]): Promise<void> {
    await hr.openRepo(repo, "write");
    if (hr.flag("create_pr")) throw HubHttpError.badRequest("Pull requests are not supported by this server");
    const branch = branchFrom(rest);
    const payload = parseCommitPayload(await hr.readBody());
    const { storage } = hr.ctx;
    const lfsSizes = new Map<string, number>();
    for (const op of payload.operations) {
      if (op.kind !== "lfsFile") continue;
      const size = await storage.lfsObjectSize(repo, op.oid);
      if (size === undefined) throw HubHttpError.badRequest(`LFS object ${op.oid} for ${op.path} has not been uploaded to ${repoLabel(repo)}`);
      if (op.size !== undefined && op.size !== size) throw HubHttpError.badRequest(`LFS object ${op.oid} for ${op.path} has size ${size}, not ${op.size}`);
      lfsSizes.set(op.oid, size);
    }
    const changes: FileChange[] = [];
    for (const op of payload.operations) {
      if (op.kind === "file") {
        const sha256 = await storage.blobs.putBytes(op.content);
        changes.push({ kind: "put", path: op.path, entry: { sha256, size: op.content.byteLength, lfs: false, gitOid: gitObjects.blobOid(op.content) } });
      } else if (op.kind === "lfsFile") {
        const size = lfsSizes.get(op.oid)!;
        changes.push({ kind: "put", path: op.path, entry: { sha256: op.oid, size, lfs: true, gitOid: gitObjects.lfsPointerInfo(op.oid, size).gitOid } });
      } else if (op.kind === "deletedFile") {
        changes.push({ kind: "deleteFile", path: op.path });
      } else {
        changes.push({ kind: "deleteFolder", path: op.path });
      }
    }
    const message = payload.description ? `${payload.summary}\n\n${payload.description}` : payload.summary;
    const commit = await storage.commit(repo, {
      branch,
      message,
      parentCommit: payload.parentCommit,
      author: hr.caller.tokenValid ? "lowrank" : undefined,
      build: (files) => applyChanges(files, changes, branch),
    });
    hr.ctx.logger.info(`commit ${commit.oid} on ${repoLabel(repo)}@${branch}: ${payload.summary.split("\n")[0]}`);
    hr.sendJson(200, {
      success: true,
      commitOid: commit.oid,
      commitUrl: `${hr.baseUrl}/${repoUrlPrefix(repo.type)}${repo.id}/commit/${commit.oid}`,
      hookOutput: "",
    });
  },
};
