import { createHash, randomBytes } from "node:crypto";
import { mkdir, open, readdir, rename, rm, stat } from "node:fs/promises";
import path from "node:path";
import { durableFs } from "./durable-fs.js";
import { HubHttpError } from "./hub-error.js";
import { isSha256 } from "./validation.js";

/** What a streamed upload must match. */
export interface BlobExpectation {
  sha256: string;
  size: number;
}

/**
 * Content-addressed blob storage at `<root>/<sha256>`. Every blob is written to a temporary file
 * in the same folder, fsynced and renamed into place, so a blob file is always complete.
 */
export class BlobStore {
  private constructor(readonly root: string) {}

  /** Opens (and creates) the store, removing temporary files left by a crash more than an hour ago. */
  static async open(root: string): Promise<BlobStore> {
    await mkdir(root, { recursive: true });
    const cutoff = Date.now() - 3_600_000;
    for (const name of await readdir(root)) {
      if (!name.startsWith(".tmp-")) continue;
      const file = path.join(root, name);
      const info = await stat(file).catch(() => undefined);
      if (info && info.mtimeMs < cutoff) await rm(file, { force: true });
    }
    return new BlobStore(root);
  }

  /** Absolute path of a blob (which may not exist). */
  pathOf(sha256: string): string {
    if (!isSha256(sha256)) throw new Error(`Invalid sha256: ${sha256}`);
    return path.join(this.root, sha256);
  }

  /** Size of a stored blob, or undefined when it is not stored. */
  async sizeOf(sha256: string): Promise<number | undefined> {
    if (!isSha256(sha256)) return undefined;
    const info = await stat(this.pathOf(sha256)).catch(() => undefined);
    return info?.isFile() ? info.size : undefined;
  }

  /** Stores bytes (a no-op when the same content is already stored) and returns their sha256. */
  async putBytes(bytes: Uint8Array): Promise<string> {
    const sha256 = createHash("sha256").update(bytes).digest("hex");
    if ((await this.sizeOf(sha256)) === bytes.byteLength) return sha256;
    await this.writeVerified([bytes], { sha256, size: bytes.byteLength });
    return sha256;
  }

  /**
   * Streams `source` to a temporary file while hashing it, and moves it into place only when its
   * size and sha256 match `expected`; otherwise throws a 400 and stores nothing.
   */
  async putStream(source: AsyncIterable<Uint8Array>, expected: BlobExpectation): Promise<void> {
    await this.writeVerified(source, expected);
  }

  private async writeVerified(source: Iterable<Uint8Array> | AsyncIterable<Uint8Array>, expected: BlobExpectation): Promise<void> {
    const target = this.pathOf(expected.sha256);
    const temp = path.join(this.root, `.tmp-${expected.sha256.slice(0, 16)}-${randomBytes(6).toString("hex")}`);
    const handle = await open(temp, "wx");
    const hash = createHash("sha256");
    let received = 0;
    let committed = false;
    try {
      for await (const chunk of source) {
        received += chunk.byteLength;
        if (received > expected.size) {
          throw new HubHttpError(400, `Upload is larger than the declared size of ${expected.size} bytes`, undefined, true);
        }
        hash.update(chunk);
        let done = 0;
        while (done < chunk.byteLength) {
          const { bytesWritten } = await handle.write(chunk, done, chunk.byteLength - done);
          done += bytesWritten;
        }
      }
      if (received !== expected.size) {
        throw HubHttpError.badRequest(`Upload size mismatch: declared ${expected.size} bytes, received ${received}`);
      }
      const actual = hash.digest("hex");
      if (actual !== expected.sha256) {
        throw HubHttpError.badRequest(`Upload sha256 mismatch: expected ${expected.sha256}, got ${actual}`);
      }
      await handle.sync();
      await handle.close();
      await rename(temp, target);
      committed = true;
      await durableFs.syncDir(this.root);
    } finally {
      if (!committed) {
        await handle.close().catch(() => undefined);
        await rm(temp, { force: true });
      }
    }
  }
}
