import { createHash } from "node:crypto";

/**
 * Git object ids as the Hub reports them: the blob sha1 of a regular file, the blob sha1 of the
 * LFS pointer file for LFS files, and git tree ids for folders.
 */
export const gitObjects = {
  /** sha1 of `blob <size>\0<content>`, i.e. what `git hash-object` prints. */
  blobOid(content: Uint8Array): string {
    return createHash("sha1").update(`blob ${content.byteLength}\0`).update(content).digest("hex");
  },

  /** The git-lfs pointer file that stands for an LFS object in git. */
  lfsPointer(sha256: string, size: number): string {
    return `version https://git-lfs.github.com/spec/v1\noid sha256:${sha256}\nsize ${size}\n`;
  },

  /** Git id and byte size of the LFS pointer file for an object. */
  lfsPointerInfo(sha256: string, size: number): { gitOid: string; pointerSize: number } {
    const pointer = Buffer.from(gitObjects.lfsPointer(sha256, size), "utf8");
    return { gitOid: gitObjects.blobOid(pointer), pointerSize: pointer.byteLength };
  },

  /**
   * Git tree id of a folder from its direct entries (`oid` of files and sub-trees). Entries are
   * sorted as git does: by name, with folder names compared as if followed by "/".
   */
  treeOid(entries: Array<{ name: string; oid: string; directory: boolean }>): string {
    const key = (e: { name: string; directory: boolean }) => Buffer.from(e.directory ? `${e.name}/` : e.name, "utf8");
    const sorted = [...entries].sort((a, b) => Buffer.compare(key(a), key(b)));
    const parts = sorted.map((e) => Buffer.concat([Buffer.from(`${e.directory ? "40000" : "100644"} ${e.name}\0`, "utf8"), Buffer.from(e.oid, "hex")]));
    const body = Buffer.concat(parts);
    return createHash("sha1").update(`tree ${body.byteLength}\0`).update(body).digest("hex");
  },

  /** JSON with object keys sorted recursively, so equal values always serialize identically. */
  canonicalJson(value: unknown): string {
    return JSON.stringify(sortKeys(value));
  },

  /** 40-hex sha1 of the canonical JSON of a value (used as commit id). */
  sha1OfJson(value: unknown): string {
    return createHash("sha1").update(gitObjects.canonicalJson(value)).digest("hex");
  },
};

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[key];
      if (v !== undefined) out[key] = sortKeys(v);
    }
    return out;
  }
  return value;
}
