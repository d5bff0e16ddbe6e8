import { gitObjects } from "./git-objects.js";
import type { Commit } from "./hub-storage.js";

/** A tree entry as the Hub's `/tree` and `/paths-info` endpoints return it. */
export interface TreeEntryJson {
  type: "file" | "directory";
  oid: string;
  size: number;
  path: string;
  lfs?: { oid: string; size: number; pointerSize: number };
  lastCommit?: { id: string; title: string; date: string };
}

interface Folder {
  files: string[];
  folders: Set<string>;
}

/**
 * The folder structure of one commit: listings in Hub format and git tree ids of folders.
 * Instances are cached per commit id (commits are immutable).
 */
export class FileTree {
  private static readonly cache = new Map<string, FileTree>();
  private readonly folders = new Map<string, Folder>();
  private readonly treeOids = new Map<string, string>();

  private constructor(readonly commit: Commit) {
    this.folders.set("", { files: [], folders: new Set() });
    for (const file of Object.keys(commit.files)) {
      const segments = file.split("/");
      let parent = "";
      for (let i = 0; i < segments.length - 1; i++) {
        const folder = segments.slice(0, i + 1).join("/");
        this.folders.get(parent)!.folders.add(segments[i]!);
        if (!this.folders.has(folder)) this.folders.set(folder, { files: [], folders: new Set() });
        parent = folder;
      }
      this.folders.get(parent)!.files.push(segments[segments.length - 1]!);
    }
  }

  /** The (cached) tree of a commit. */
  static of(commit: Commit): FileTree {
    const cached = FileTree.cache.get(commit.oid);
    if (cached) return cached;
    const tree = new FileTree(commit);
    if (FileTree.cache.size >= 64) FileTree.cache.delete(FileTree.cache.keys().next().value as string);
    FileTree.cache.set(commit.oid, tree);
    return tree;
  }

  /** True when `path` is a folder of this commit ("" is the root). */
  isFolder(path: string): boolean {
    return this.folders.has(path);
  }

  /** Git tree id of a folder, or undefined when it does not exist. */
  folderOid(path: string): string | undefined {
    const folder = this.folders.get(path);
    if (!folder) return undefined;
    const known = this.treeOids.get(path);
    if (known) return known;
    const join = (name: string) => (path ? `${path}/${name}` : name);
    const oid = gitObjects.treeOid([
      ...folder.files.map((name) => ({ name, oid: this.commit.files[join(name)]!.gitOid, directory: false })),
      ...[...folder.folders].map((name) => ({ name, oid: this.folderOid(join(name))!, directory: true })),
    ]);
    this.treeOids.set(path, oid);
    return oid;
  }

  /** The entry of a file or folder, or undefined. */
  entry(path: string): TreeEntryJson | undefined {
    const file = this.commit.files[path];
    if (file) {
      return {
        type: "file",
        oid: file.gitOid,
        size: file.size,
        path,
        ...(file.lfs ? { lfs: { oid: file.sha256, size: file.size, pointerSize: gitObjects.lfsPointerInfo(file.sha256, file.size).pointerSize } } : {}),
      };
    }
    if (path !== "" && this.folders.has(path)) return { type: "directory", oid: this.folderOid(path)!, size: 0, path };
    return undefined;
  }

  /**
   * Entries under a folder: its direct children, or with `recursive` every descendant in depth-first
   * order (a folder right before its contents). Names are sorted, folders first at each level.
   */
  list(folderPath: string, recursive: boolean): TreeEntryJson[] {
    const out: TreeEntryJson[] = [];
    const visit = (path: string) => {
      const folder = this.folders.get(path);
      if (!folder) return;
      const join = (name: string) => (path ? `${path}/${name}` : name);
      for (const name of [...folder.folders].sort()) {
        out.push(this.entry(join(name))!);
        if (recursive) visit(join(name));
      }
      for (const name of [...folder.files].sort()) out.push(this.entry(join(name))!);
    };
    visit(folderPath);
    return out;
  }
}
