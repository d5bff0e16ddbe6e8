import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { open, rename, rm, stat, readFile } from "node:fs/promises";
import { LowrankError } from "@lowrank/core";
import { testKillPoint, writeFileAtomic } from "@lowrank/core/internal";
import type { RepoCache } from "./hf-cache.js";
import { hubFetch, hubResponseError } from "./hub-errors.js";

const LOCK_STALE_MS = 10 * 60 * 1000;

async function hashFile(file: string, algorithm: "sha256" | "sha1", gitBlobSize?: number): Promise<string> {
  const hash = createHash(algorithm);
  if (gitBlobSize !== undefined) hash.update(`blob ${gitBlobSize}\0`);
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Takes the blob's lock file, waiting while another live process holds it; breaks stale locks. */
async function acquireLock(file: string, isDone: () => Promise<boolean>): Promise<(() => Promise<void>) | undefined> {
  for (;;) {
    try {
      const handle = await open(file, "wx");
      await handle.writeFile(String(process.pid));
      await handle.close();
      return () => rm(file, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    if (await isDone()) return undefined;
    const [owner, info] = await Promise.all([readFile(file, "utf8").catch(() => ""), stat(file).catch(() => undefined)]);
    const pid = Number(owner);
    if (!info || (Number.isInteger(pid) && pid > 0 && !alive(pid)) || Date.now() - info.mtimeMs > LOCK_STALE_MS) {
      await rm(file, { force: true });
      continue;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export interface BlobDownload {
  url: string;
  token?: string;
  cache: RepoCache;
  /** The blob's name: sha256 for LFS files, the git blob sha1 for others. */
  etag: string;
  size: number;
  lfs: boolean;
  what: string;
  onBytes?: (done: number, total: number) => void;
}

/**
 * Downloads a file into the cache's blobs/<etag>: through `<etag>.incomplete`, resuming from what
 * an earlier, interrupted download left (HTTP Range) and retrying a dropped connection, under a lock
 * so two processes never write the same blob; the content is checked (sha256 for LFS files, the git
 * blob sha1 for others) before it is renamed into place.
 *
 * Failure leaves no file under the blob's own name. A connection that keeps breaking off (or bodies
 * that keep ending early) fails after 5 tries and keeps what arrived in `<etag>.incomplete`, so the
 * next pull resumes from there (huggingface_hub does the same); content that does not match the
 * ETag, or a body longer than the announced size (never written past it), leaves nothing.
 * @throws LowrankError IO_ERROR when the content does not match or the server keeps failing.
 */
export async function downloadBlob(d: BlobDownload): Promise<void> {
  await d.cache.ensureFolders();
  const blob = d.cache.blobPath(d.etag);
  const done = async () => Boolean(await stat(blob).catch(() => undefined));
  if (await done()) return;
  const release = await acquireLock(d.cache.lockPath(d.etag), done);
  if (!release) return;
  const incomplete = `${blob}.incomplete`;
  try {
    if (await done()) return;
    let failures = 0;
    for (;;) {
      const have = (await stat(incomplete).catch(() => undefined))?.size ?? 0;
      if (have > d.size) await rm(incomplete, { force: true });
      if (have === d.size) break;
      const start = have > d.size ? 0 : have;
      const response = await hubFetch(d.url, { token: d.token, headers: start > 0 ? { Range: `bytes=${start}-` } : {} }, d.what).catch(
        (error) => error as Error,
      );
      if (response instanceof Error) {
        if (++failures > 4) throw response;
        continue;
      }
      if (!response.ok) throw await hubResponseError(response, d.what, d.token);
      // A server that ignores Range sends the whole file again: start over.
      const append = start > 0 && response.status === 206;
      const handle = await open(incomplete, append ? "a" : "w");
      let written = append ? start : 0;
      let tooLong = false;
      try {
        for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
          // Never write past the announced size: a server streaming without end must not fill the disk.
          if (written + chunk.byteLength > d.size) {
            tooLong = true;
            break;
          }
          await handle.write(chunk);
          written += chunk.byteLength;
          testKillPoint("hub-download:partial", blob);
          d.onBytes?.(written, d.size);
        }
        await handle.sync();
        testKillPoint("hub-download:synced", blob);
        // A body that ended cleanly but early counts as a break-off too (else it would be retried forever).
        if (!tooLong && written < d.size) throw new Error(`the body ended after ${written} of ${d.size} bytes`);
      } catch (error) {
        if (++failures > 4)
          throw new LowrankError("IO_ERROR", `${d.what}: the download broke off ${failures} times (${(error as Error).message.split("\n")[0]})`);
      } finally {
        await handle.close();
      }
      if (tooLong) {
        await rm(incomplete, { force: true });
        throw new LowrankError("IO_ERROR", `${d.what}: the Hub sent more than the ${d.size} bytes it announced; nothing was kept`);
      }
    }
    const actual = d.lfs ? await hashFile(incomplete, "sha256") : await hashFile(incomplete, "sha1", d.size);
    if (actual !== d.etag) {
      await rm(incomplete, { force: true });
      throw new LowrankError("IO_ERROR", `${d.what}: downloaded content has ${d.lfs ? "sha256" : "git sha1"} ${actual}, expected ${d.etag}; nothing was kept`);
    }
    await rename(incomplete, blob);
    testKillPoint("hub-download:renamed", blob);
  } finally {
    await release();
  }
}

/** Writes bytes as a blob (content already verified by the caller): temporary file, fsync, rename. */
export async function storeBlob(cache: RepoCache, etag: string, bytes: Uint8Array): Promise<void> {
  await cache.ensureFolders();
  await writeFileAtomic(cache.blobPath(etag), bytes);
}
