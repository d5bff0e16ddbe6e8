import { randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { BlobStore } from "./blob-store.js";
import { durableFs } from "./durable-fs.js";
import { gitObjects } from "./git-objects.js";
import { HubHttpError } from "./hub-error.js";
import { isCommitOid, isSha256, repoLabel, type RepoRef, type RepoType } from "./validation.js";

/** One file of a commit's tree. Both regular and LFS contents live in the blob store under `sha256`. */
export interface FileEntry {
  sha256: string;
  size: number;
  lfs: boolean;
  /** Git blob id: of the content for regular files, of the LFS pointer for LFS files. */
  gitOid: string;
}

/** A stored commit; `oid` is the sha1 of the canonical JSON of all other fields. */
export interface Commit {
  oid: string;
  parent: string | null;
  message: string;
  author?: string;
  date: string;
  files: Record<string, FileEntry>;
}

/** Repository metadata (`repo.json`). Its presence is what makes a repo exist. */
export interface RepoMeta {
  id: string;
  type: RepoType;
  /** Hub-style opaque 24-hex id. */
  _id: string;
  private: boolean;
  createdAt: string;
}

/** What a commit writes: the branch, the expected parent, and how the file map changes. */
export interface CommitRequest {
  branch: string;
  message: string;
  author?: string;
  /** When set, the commit is refused (412) unless the branch head is this commit. */
  parentCommit?: string;
  /** Computes the new file map from the parent's (may throw a HubHttpError). */
  build(files: Record<string, FileEntry>): Record<string, FileEntry> | Promise<Record<string, FileEntry>>;
}

/** The `.gitattributes` of a new repo, as the Hub creates it (abridged). */
const INITIAL_GITATTRIBUTES = [
  "*.7z",
  "*.arrow",
  "*.bin",
  "*.bz2",
  "*.ckpt",
  "*.ftz",
  "*.gz",
  "*.h5",
  "*.joblib",
  "*.lfs.*",
  "*.mlmodel",
  "*.model",
  "*.msgpack",
  "*.npy",
  "*.npz",
  "*.onnx",
  "*.ot",
  "*.parquet",
  "*.pb",
  "*.pickle",
  "*.pkl",
  "*.pt",
  "*.pth",
  "*.rar",
  "*.safetensors",
  "saved_model/**/*",
  "*.tar.*",
  "*.tar",
  "*.tflite",
  "*.tgz",
  "*.wasm",
  "*.xz",
  "*.zip",
  "*.zst",
  "*tfevents*",
  "*.gguf",
]
  .map((pattern) => `${pattern} filter=lfs diff=lfs merge=lfs -text\n`)
  .join("");

/**
 * Durable storage of repos, commits and branches under one folder:
 * - `blobs/sha256/<hex>`: file contents (see {@link BlobStore});
 * - `repos/<type>s/<org>/<name>/` (repos without a namespace live under `repos/<type>s/_/<name>/`)
 *   with `repo.json`, `commits/<oid>.json`, `refs/<encodeURIComponent(branch)>`,
 *   `tags/<encodeURIComponent(tag)>` (JSON `{ oid, message?, date }`) and `lfs/<sha256>` (markers of
 *   the LFS objects this repo may reference).
 * Commits and refs are written atomically (temporary file, fsync, rename). Writers to one repo are
 * serialized in-process; one server process per folder is supported.
 */
export class HubStorage {
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly commitCache = new Map<string, Commit>();

  private constructor(
    readonly dir: string,
    readonly blobs: BlobStore,
  ) {}

  /** Opens (creating as needed) the storage folder. */
  static async open(dir: string): Promise<HubStorage> {
    await mkdir(path.join(dir, "repos"), { recursive: true });
    return new HubStorage(dir, await BlobStore.open(path.join(dir, "blobs", "sha256")));
  }

  /** The folder of a repo. */
  repoDir(ref: RepoRef): string {
    const [first, second] = ref.id.split("/");
    return second === undefined ? path.join(this.dir, "repos", `${ref.type}s`, "_", first!) : path.join(this.dir, "repos", `${ref.type}s`, first!, second);
  }

  /** Metadata of a repo, or undefined when it does not exist. */
  async getRepo(ref: RepoRef): Promise<RepoMeta | undefined> {
    const text = await readFile(path.join(this.repoDir(ref), "repo.json"), "utf8").catch(() => undefined);
    return text === undefined ? undefined : (JSON.parse(text) as RepoMeta);
  }

  /** Metadata of every repo of a type, in no particular order. */
  async listRepos(type: RepoType): Promise<RepoMeta[]> {
    const root = path.join(this.dir, "repos", `${type}s`);
    const out: RepoMeta[] = [];
    for (const namespace of await readdir(root).catch(() => [] as string[])) {
      for (const name of await readdir(path.join(root, namespace)).catch(() => [] as string[])) {
        const text = await readFile(path.join(root, namespace, name, "repo.json"), "utf8").catch(() => undefined);
        if (text !== undefined) out.push(JSON.parse(text) as RepoMeta);
      }
    }
    return out;
  }

  /**
   * Creates a repo whose `main` branch holds one commit with `.gitattributes` (plus `files`, when
   * given). Throws 409 when it exists. `repo.json` is written last, so a crash leaves no half repo.
   */
  async createRepo(ref: RepoRef, options: { private: boolean; files?: Record<string, Uint8Array> }): Promise<RepoMeta> {
    return this.withLock(`repo:${ref.type}:${ref.id.toLowerCase()}`, async () => {
      if (await this.getRepo(ref)) throw new HubHttpError(409, `You already created this ${ref.type} repo: ${repoLabel(ref)}`);
      const dir = this.repoDir(ref);
      await rm(dir, { recursive: true, force: true });
      const contents: Record<string, Uint8Array> = { ".gitattributes": Buffer.from(INITIAL_GITATTRIBUTES), ...options.files };
      const files: Record<string, FileEntry> = {};
      for (const [file, bytes] of Object.entries(contents)) {
        files[file] = { sha256: await this.blobs.putBytes(bytes), size: bytes.byteLength, lfs: false, gitOid: gitObjects.blobOid(bytes) };
      }
      const commit = await this.writeCommitObject(ref, { parent: null, message: "initial commit", date: new Date().toISOString(), files });
      await this.writeRef(ref, "main", commit.oid);
      const meta: RepoMeta = { id: ref.id, type: ref.type, _id: randomBytes(12).toString("hex"), private: options.private, createdAt: commit.date };
      await durableFs.writeFile(path.join(dir, "repo.json"), `${JSON.stringify(meta, null, 2)}\n`);
      return meta;
    });
  }

  /** Changes a repo's visibility. */
  async updateRepo(ref: RepoRef, patch: { private?: boolean }): Promise<RepoMeta> {
    return this.withLock(`repo:${ref.type}:${ref.id.toLowerCase()}`, async () => {
      const meta = await this.getRepo(ref);
      if (!meta) throw HubHttpError.repoNotFound(repoLabel(ref));
      const next = { ...meta, ...(patch.private === undefined ? {} : { private: patch.private }) };
      await durableFs.writeFile(path.join(this.repoDir(ref), "repo.json"), `${JSON.stringify(next, null, 2)}\n`);
      return next;
    });
  }

  /** Deletes a repo (its blobs stay in the shared blob store). */
  async deleteRepo(ref: RepoRef): Promise<void> {
    await this.withLock(`repo:${ref.type}:${ref.id.toLowerCase()}`, async () => {
      if (!(await this.getRepo(ref))) throw HubHttpError.repoNotFound(repoLabel(ref));
      const trash = path.join(this.dir, "trash", randomBytes(8).toString("hex"));
      await mkdir(path.dirname(trash), { recursive: true });
      await rename(this.repoDir(ref), trash);
      await rm(trash, { recursive: true, force: true });
    });
  }

  /** The commit a branch points to, or undefined. */
  async readRef(ref: RepoRef, branch: string): Promise<string | undefined> {
    const text = await readFile(this.refPath(ref, branch), "utf8").catch(() => undefined);
    const oid = text?.trim();
    return oid && isCommitOid(oid) ? oid : undefined;
  }

  /** All branches with their head commits, sorted by name. */
  async listBranches(ref: RepoRef): Promise<Array<{ name: string; oid: string }>> {
    const names = await readdir(path.join(this.repoDir(ref), "refs")).catch(() => [] as string[]);
    const out: Array<{ name: string; oid: string }> = [];
    for (const encoded of names.filter((n) => !n.startsWith(".")).sort()) {
      const name = decodeURIComponent(encoded);
      const oid = await this.readRef(ref, name);
      if (oid) out.push({ name, oid });
    }
    return out;
  }

  /** A commit of this repo by id, or undefined. */
  async readCommit(ref: RepoRef, oid: string): Promise<Commit | undefined> {
    if (!isCommitOid(oid)) return undefined;
    const key = `${ref.type}:${ref.id}:${oid}`;
    const cached = this.commitCache.get(key);
    if (cached) return cached;
    const text = await readFile(path.join(this.repoDir(ref), "commits", `${oid}.json`), "utf8").catch(() => undefined);
    if (text === undefined) return undefined;
    const commit = JSON.parse(text) as Commit;
    if (this.commitCache.size >= 512) this.commitCache.delete(this.commitCache.keys().next().value as string);
    this.commitCache.set(key, commit);
    return commit;
  }

  /**
   * Resolves "HEAD" (= main), a branch name, a tag name (branches first, as git does),
   * "refs/heads/<branch>", "refs/tags/<tag>" or a 40-hex commit id to a commit.
   */
  async resolveRevision(ref: RepoRef, revision: string): Promise<Commit | undefined> {
    // A name that is no valid ref file name (".", "..") resolves to nothing rather than failing.
    const branch = (name: string) => this.readRef(ref, name).catch(() => undefined);
    const tag = (name: string) =>
      this.readTag(ref, name).then(
        (t) => t?.oid,
        () => undefined,
      );
    let oid: string | undefined;
    if (revision.startsWith("refs/heads/")) oid = await branch(revision.slice("refs/heads/".length));
    else if (revision.startsWith("refs/tags/")) oid = await tag(revision.slice("refs/tags/".length));
    else oid = (await branch(revision === "HEAD" ? "main" : revision)) ?? (await tag(revision)) ?? (isCommitOid(revision) ? revision : undefined);
    return oid ? this.readCommit(ref, oid) : undefined;
  }

  /** A tag's commit (and message, date), or undefined. */
  async readTag(ref: RepoRef, tag: string): Promise<{ oid: string; message?: string; date: string } | undefined> {
    const text = await readFile(this.tagPath(ref, tag), "utf8").catch(() => undefined);
    if (text === undefined) return undefined;
    const value = JSON.parse(text) as { oid?: unknown; message?: string; date: string };
    return typeof value.oid === "string" && isCommitOid(value.oid) ? (value as { oid: string; message?: string; date: string }) : undefined;
  }

  /** All tags with their commits, sorted by name. */
  async listTags(ref: RepoRef): Promise<Array<{ name: string; oid: string }>> {
    const names = await readdir(path.join(this.repoDir(ref), "tags")).catch(() => [] as string[]);
    const out: Array<{ name: string; oid: string }> = [];
    for (const encoded of names.filter((n) => !n.startsWith(".")).sort()) {
      const name = decodeURIComponent(encoded);
      const tag = await this.readTag(ref, name);
      if (tag) out.push({ name, oid: tag.oid });
    }
    return out;
  }

  /** Tags `oid` as `tag`; 409 when the tag exists, or a branch has that name (a revision names one ref). */
  async createTag(ref: RepoRef, tag: string, oid: string, message?: string): Promise<void> {
    await this.withLock(`repo:${ref.type}:${ref.id.toLowerCase()}`, async () => {
      if (await this.readTag(ref, tag)) throw new HubHttpError(409, `Tag already exists: ${tag}`);
      if (await this.readRef(ref, tag)) throw new HubHttpError(409, `A branch named ${tag} exists: a tag may not have the same name`);
      const body = { oid, ...(message ? { message } : {}), date: new Date().toISOString() };
      await durableFs.writeFile(this.tagPath(ref, tag), `${JSON.stringify(body)}\n`);
    });
  }

  /** Deletes a tag; 404 RevisionNotFound when it does not exist. */
  async deleteTag(ref: RepoRef, tag: string): Promise<void> {
    await this.withLock(`repo:${ref.type}:${ref.id.toLowerCase()}`, async () => {
      if (!(await this.readTag(ref, tag))) throw HubHttpError.revisionNotFound(repoLabel(ref), tag);
      await rm(this.tagPath(ref, tag), { force: true });
    });
  }

  /**
   * Commits on a branch: refused with 412 when `parentCommit` is given and is not the head. A
   * missing branch is created from main's head (documented deviation: the Hub requires it to exist).
   */
  async commit(ref: RepoRef, request: CommitRequest): Promise<Commit> {
    return this.withLock(`repo:${ref.type}:${ref.id.toLowerCase()}`, async () => {
      const own = await this.readRef(ref, request.branch);
      if (!own && (await this.readTag(ref, request.branch))) throw HubHttpError.badRequest(`${request.branch} is a tag: commits must target a branch`);
      const head = own ?? (await this.readRef(ref, "main"));
      if (request.parentCommit !== undefined && request.parentCommit !== head) {
        throw new HubHttpError(
          412,
          `A commit has happened since: parentCommit ${request.parentCommit} is not the head of ${request.branch} (${head ?? "none"})`,
        );
      }
      const parent = head ? await this.readCommit(ref, head) : undefined;
      const files = await request.build({ ...(parent?.files ?? {}) });
      const commit = await this.writeCommitObject(ref, {
        parent: parent?.oid ?? null,
        message: request.message,
        author: request.author,
        date: new Date().toISOString(),
        files,
      });
      for (const [file, entry] of Object.entries(files)) {
        if (entry.lfs && parent?.files[file]?.sha256 !== entry.sha256) await this.grantLfsObject(ref, entry.sha256);
      }
      await this.writeRef(ref, request.branch, commit.oid);
      return commit;
    });
  }

  /** Creates a branch at `oid`; 409 when it exists (unless `overwrite`) or a tag has that name. */
  async createBranch(ref: RepoRef, branch: string, oid: string, overwrite = false): Promise<void> {
    await this.withLock(`repo:${ref.type}:${ref.id.toLowerCase()}`, async () => {
      if (!overwrite && (await this.readRef(ref, branch))) throw new HubHttpError(409, `Branch already exists: ${branch}`);
      if (await this.readTag(ref, branch)) throw new HubHttpError(409, `A tag named ${branch} exists: a branch may not have the same name`);
      await this.writeRef(ref, branch, oid);
    });
  }

  /** Deletes a branch (not main). */
  async deleteBranch(ref: RepoRef, branch: string): Promise<void> {
    await this.withLock(`repo:${ref.type}:${ref.id.toLowerCase()}`, async () => {
      if (branch === "main") throw HubHttpError.badRequest("The main branch cannot be deleted");
      if (!(await this.readRef(ref, branch))) throw HubHttpError.revisionNotFound(repoLabel(ref), branch);
      await rm(this.refPath(ref, branch), { force: true });
    });
  }

  /** Records that this repo may reference an LFS object (after an upload or a commit). */
  async grantLfsObject(ref: RepoRef, sha256: string): Promise<void> {
    if (!isSha256(sha256)) return;
    const marker = path.join(this.repoDir(ref), "lfs", sha256);
    await mkdir(path.dirname(marker), { recursive: true });
    await writeFile(marker, "");
  }

  /** Size of an LFS object this repo may reference, or undefined (not uploaded through this repo). */
  async lfsObjectSize(ref: RepoRef, sha256: string): Promise<number | undefined> {
    if (!isSha256(sha256)) return undefined;
    const marked = await readFile(path.join(this.repoDir(ref), "lfs", sha256)).then(
      () => true,
      () => false,
    );
    return marked ? this.blobs.sizeOf(sha256) : undefined;
  }

  private refPath(ref: RepoRef, branch: string): string {
    if (branch === "." || branch === ".." || branch === "") throw HubHttpError.badRequest(`Invalid branch name "${branch}"`);
    return path.join(this.repoDir(ref), "refs", encodeURIComponent(branch));
  }

  private tagPath(ref: RepoRef, tag: string): string {
    if (tag === "." || tag === ".." || tag === "") throw HubHttpError.badRequest(`Invalid tag name "${tag}"`);
    return path.join(this.repoDir(ref), "tags", encodeURIComponent(tag));
  }

  private async writeRef(ref: RepoRef, branch: string, oid: string): Promise<void> {
    await durableFs.writeFile(this.refPath(ref, branch), `${oid}\n`);
  }

  private async writeCommitObject(ref: RepoRef, body: Omit<Commit, "oid">): Promise<Commit> {
    const commit: Commit = { oid: gitObjects.sha1OfJson(body), ...body };
    await durableFs.writeFile(path.join(this.repoDir(ref), "commits", `${commit.oid}.json`), `${JSON.stringify(commit)}\n`);
    return commit;
  }

  private async withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(key) ?? Promise.resolve();
    const run = previous.then(fn, fn);
    const settled = run.catch(() => undefined);
    this.locks.set(key, settled);
    try {
      return await run;
    } finally {
      if (this.locks.get(key) === settled) this.locks.delete(key);
    }
  }
}
