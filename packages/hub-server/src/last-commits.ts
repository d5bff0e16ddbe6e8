import { FileTree, type TreeEntryJson } from "./file-tree.js";
import type { Commit, HubStorage } from "./hub-storage.js";
import type { RepoRef } from "./validation.js";

/** How many commits are walked back at most; older changes are attributed to the last one seen. */
const MAX_WALK = 1000;

/**
 * Adds `lastCommit` (`{ id, title, date }`, the newest commit that changed the file or anything
 * under the folder) to tree entries, walking the history back from `head`.
 */
export async function addLastCommits(storage: HubStorage, ref: RepoRef, head: Commit, entries: TreeEntryJson[]): Promise<void> {
  const pending = new Set(entries.map((e) => e.path));
  const found = new Map<string, Commit>();
  const signature = (commit: Commit | undefined, entry: TreeEntryJson) =>
    commit === undefined ? undefined : entry.type === "file" ? commit.files[entry.path]?.gitOid : FileTree.of(commit).folderOid(entry.path);
  let current: Commit | undefined = head;
  for (let steps = 0; current && pending.size > 0; steps++) {
    const parent: Commit | undefined = current.parent && steps < MAX_WALK ? await storage.readCommit(ref, current.parent) : undefined;
    for (const entry of entries) {
      if (!pending.has(entry.path)) continue;
      if (parent === undefined || signature(current, entry) !== signature(parent, entry)) {
        found.set(entry.path, current);
        pending.delete(entry.path);
      }
    }
    current = parent;
  }
  for (const entry of entries) {
    const commit = found.get(entry.path);
    if (commit) entry.lastCommit = { id: commit.oid, title: commit.message.split("\n")[0] ?? "", date: commit.date };
  }
}
