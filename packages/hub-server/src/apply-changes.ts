import type { FileEntry } from "./hub-storage.js";
import { testKillPoint } from "@lowrank/core/internal";
import { HubHttpError } from "./hub-error.js";

/** One change of a commit, with file contents already stored as blobs. */
export type FileChange = { kind: "put"; path: string; entry: FileEntry } | { kind: "deleteFile"; path: string } | { kind: "deleteFolder"; path: string };

/**
 * Applies changes in order to a commit's file map (mutating and returning it). Deleting a missing
 * file or folder is a 404 EntryNotFound; a file may not take the place of a folder or the reverse.
 */
export function applyChanges(files: Record<string, FileEntry>, changes: FileChange[], revision: string): Record<string, FileEntry> {
  for (const change of changes) {
    if (change.kind === "put") {
      const segments = change.path.split("/");
      for (let i = 1; i < segments.length; i++) {
        const ancestor = segments.slice(0, i).join("/");
        if (files[ancestor]) throw HubHttpError.badRequest(`Cannot add ${change.path}: ${ancestor} is a file`);
      }
      if (!files[change.path] && hasFolder(files, change.path)) {
        throw HubHttpError.badRequest(`Cannot add ${change.path}: a folder with this path exists`);
      }
      files[change.path] = change.entry;
    } else if (change.kind === "deleteFile") {
      if (!files[change.path]) throw HubHttpError.entryNotFound(change.path, revision);
      delete files[change.path];
    } else {
      const prefix = `${change.path}/`;
      const doomed = Object.keys(files).filter((p) => p.startsWith(prefix));
      if (doomed.length === 0) throw HubHttpError.entryNotFound(change.path, revision);
      for (const p of doomed) delete files[p];
    }
  }
  testKillPoint("hub-commit:applied");
  return files;
}

function hasFolder(files: Record<string, FileEntry>, folder: string): boolean {
  const prefix = `${folder}/`;
  for (const p of Object.keys(files)) if (p.startsWith(prefix)) return true;
  return false;
}
