import { lstat, mkdir, readFile, readlink, rename, rm, symlink } from "node:fs/promises";
import path from "node:path";
import { writeFileAtomic } from "@lowrank/core/internal";

/**
 * huggingface_hub's cache layout, shared with Python:
 *   <cache>/models--org--name/blobs/<etag>            file contents, named by etag (sha256 for LFS)
 *   <cache>/models--org--name/snapshots/<sha>/<path>  relative symlinks to ../../blobs/<etag>
 *   <cache>/models--org--name/refs/<revision>         the commit sha a branch pointed to
 *   <cache>/.locks/models--org--name/<etag>.lock      held while a blob downloads
 */
export class RepoCache {
  readonly folder: string;

  constructor(
    readonly cacheDir: string,
    readonly repo: string,
    readonly type: "model" | "dataset" | "space" = "model",
  ) {
    this.folder = path.join(cacheDir, `${type}s--${repo.replace(/\//g, "--")}`);
  }

  blobPath(etag: string): string {
    return path.join(this.folder, "blobs", etag);
  }

  snapshotDir(commit: string): string {
    return path.join(this.folder, "snapshots", commit);
  }

  lockPath(etag: string): string {
    return path.join(this.cacheDir, ".locks", path.basename(this.folder), `${etag}.lock`);
  }

  /** The commit a revision resolved to last time (refs/<revision>), if any. */
  async readRef(revision: string): Promise<string | undefined> {
    if (/^[0-9a-f]{40}$/.test(revision)) return revision;
    try {
      return (await readFile(path.join(this.folder, "refs", revision), "utf8")).trim();
    } catch {
      return undefined;
    }
  }

  async writeRef(revision: string, commit: string): Promise<void> {
    if (revision === commit) return;
    const file = path.join(this.folder, "refs", revision);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFileAtomic(file, commit);
  }

  /**
   * Points snapshots/<commit>/<file> at blobs/<etag> with a relative symlink (as Python does); an
   * existing correct link is kept, a wrong one replaced atomically.
   */
  async link(commit: string, file: string, etag: string): Promise<string> {
    const pointer = path.join(this.snapshotDir(commit), file);
    await mkdir(path.dirname(pointer), { recursive: true });
    const target = path.relative(path.dirname(pointer), this.blobPath(etag));
    const existing = await readlink(pointer).catch(() => undefined);
    if (existing === target) return pointer;
    const temp = `${pointer}.${process.pid}.tmp`;
    await rm(temp, { force: true });
    await symlink(target, temp);
    await rename(temp, pointer);
    return pointer;
  }

  async hasBlob(etag: string): Promise<boolean> {
    return (await lstat(this.blobPath(etag)).catch(() => undefined))?.isFile() ?? false;
  }

  async ensureFolders(): Promise<void> {
    await mkdir(path.join(this.folder, "blobs"), { recursive: true });
    await mkdir(path.dirname(this.lockPath("x")), { recursive: true });
  }

  /** Writes a small text blob directly (used by tests and tools). */
  async writeBlob(etag: string, bytes: Uint8Array): Promise<void> {
    await this.ensureFolders();
    await writeFileAtomic(this.blobPath(etag), bytes);
  }
}
