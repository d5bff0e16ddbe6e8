import { mkdir, open } from "node:fs/promises";
import path from "node:path";
import { testKillPoint, writeFileAtomic } from "@lowrank/core/internal";

/**
 * Crash-safe file writes: content goes to a temporary sibling, is fsynced and renamed into place
 * (via `writeFileAtomic` of @lowrank/core), then the folder is fsynced so the rename itself is durable.
 */
export const durableFs = {
  /** Atomically replaces (or creates) `target` with `data`, creating parent folders as needed. */
  async writeFile(target: string, data: Uint8Array | string): Promise<void> {
    await mkdir(path.dirname(target), { recursive: true });
    await writeFileAtomic(target, data);
    testKillPoint("hub-server:renamed", target);
    await durableFs.syncDir(path.dirname(target));
  },

  /** fsyncs a folder so renames inside it survive a crash (best effort on platforms without it). */
  async syncDir(dir: string): Promise<void> {
    let handle: import("node:fs/promises").FileHandle | undefined;
    try {
      handle = await open(dir, "r");
      await handle.sync();
    } catch {
      // Not supported everywhere (e.g. Windows); the rename is still atomic.
    } finally {
      await handle?.close().catch(() => undefined);
    }
  },
};
