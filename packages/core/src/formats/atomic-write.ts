import { mkdir, open, rename, rm, readdir, stat } from "node:fs/promises";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { testKillPoint } from "./test-kill-point.js";

function tempSibling(target: string, kind: string): string {
  const dir = path.dirname(target);
  return path.join(dir, `.${path.basename(target)}.${kind}-${process.pid}-${randomBytes(4).toString("hex")}`);
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Removes temporary siblings of `target` left by a writer that was killed (its process is gone):
 * they were never renamed into place, so nothing anyone reads is lost.
 */
export async function removeAbandonedTemps(target: string): Promise<void> {
  const prefix = `.${path.basename(target)}.`;
  const entries = await readdir(path.dirname(path.resolve(target))).catch(() => [] as string[]);
  for (const name of entries) {
    if (!name.startsWith(prefix)) continue;
    const match = /^(?:tmp|partial)-(\d+)-[0-9a-f]{8}$/.exec(name.slice(prefix.length));
    if (match && Number(match[1]) !== process.pid && !processAlive(Number(match[1]))) {
      await rm(path.join(path.dirname(path.resolve(target)), name), { recursive: true, force: true });
    }
  }
}

/**
 * A file written under a temporary name in the target's folder and renamed into place on `commit`,
 * so readers see either the old complete file or the new complete one, never a torn one.
 */
export class AtomicFile {
  private constructor(
    readonly target: string,
    readonly tempPath: string,
    private readonly handle: import("node:fs/promises").FileHandle,
  ) {}

  static async create(target: string): Promise<AtomicFile> {
    await removeAbandonedTemps(target);
    const tempPath = tempSibling(target, "tmp");
    const handle = await open(tempPath, "wx");
    return new AtomicFile(target, tempPath, handle);
  }

  /** Writes bytes at an absolute position (or appends when position is omitted). */
  async write(bytes: Uint8Array, position?: number): Promise<void> {
    let done = 0;
    while (done < bytes.byteLength) {
      const { bytesWritten } = await this.handle.write(bytes, done, bytes.byteLength - done, position === undefined ? null : position + done);
      done += bytesWritten;
    }
    testKillPoint("atomic-write:partial", this.target);
  }

  /** fsyncs, closes and renames the file into place. */
  async commit(): Promise<void> {
    await this.handle.sync();
    await this.handle.close();
    testKillPoint("atomic-write:synced", this.target);
    await rename(this.tempPath, this.target);
    testKillPoint("atomic-write:renamed", this.target);
  }

  /** Closes and deletes the temporary file; the target is left as it was. */
  async abort(): Promise<void> {
    await this.handle.close().catch(() => undefined);
    await rm(this.tempPath, { force: true });
  }
}

/** Writes a whole file atomically (temporary file, fsync, rename). */
export async function writeFileAtomic(target: string, data: Uint8Array | string): Promise<void> {
  const file = await AtomicFile.create(target);
  const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
  try {
    // In two writes, so that a crash test can stop it with the file half written.
    await file.write(bytes.subarray(0, bytes.byteLength >> 1), 0);
    await file.write(bytes.subarray(bytes.byteLength >> 1), bytes.byteLength >> 1);
    await file.commit();
  } catch (error) {
    await file.abort();
    throw error;
  }
}

/**
 * Fills a temporary sibling folder with `fill`, then moves it into place as `target`: renamed whole
 * when `target` does not exist, else file by file in name order (each rename atomic, so each file
 * is the old complete one or the new complete one; other files in `target`, such as training checkpoints, are
 * kept). On failure the temporary folder is removed and `target` is untouched; a folder left by a
 * killed writer is removed by the next write. `removeStale` names files of the kind the new content
 * consists of (weights): those in `target` that the new content does not replace are removed.
 */
export async function writeDirectoryAtomic<T>(target: string, fill: (tempDir: string) => Promise<T>, options: { removeStale?: RegExp } = {}): Promise<T> {
  await mkdir(path.dirname(path.resolve(target)), { recursive: true });
  await removeAbandonedTemps(target);
  const tempDir = tempSibling(path.resolve(target), "partial");
  await mkdir(tempDir);
  try {
    const result = await fill(tempDir);
    testKillPoint("atomic-dir:filled", path.resolve(target));
    const existing = await stat(target).catch(() => undefined);
    if (!existing) {
      await rename(tempDir, target);
      testKillPoint("atomic-dir:renamed", path.resolve(target));
    } else {
      // In name order, so that what a crash between two files leaves is known.
      const written = (await readdir(tempDir)).sort();
      for (const name of written) {
        await rename(path.join(tempDir, name), path.join(target, name));
        testKillPoint("atomic-dir:moved", path.join(path.resolve(target), name));
      }
      await rm(tempDir, { recursive: true, force: true });
      // Files of the same kind the new content does not replace would be read instead of it
      // (an old model.safetensors beside new shards): they go.
      if (options.removeStale) {
        for (const name of await readdir(target)) {
          if (options.removeStale.test(name) && !written.includes(name)) await rm(path.join(target, name), { force: true });
        }
      }
    }
    return result;
  } catch (error) {
    await rm(tempDir, { recursive: true, force: true });
    throw error;
  }
}
