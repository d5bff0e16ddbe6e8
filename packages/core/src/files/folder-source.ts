import { readFile } from "node:fs/promises";
import path from "node:path";
import { LowrankError } from "../errors/lowrank-error.js";
import type { FileSource } from "./file-source.js";

/** A folder's files (Node). */
export function folderSource(dir: string): FileSource {
  return {
    label: dir,
    async read(name) {
      try {
        return new Uint8Array(await readFile(path.join(dir, name)));
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === "ENOENT" || code === "ENOTDIR") return undefined;
        throw new LowrankError("IO_ERROR", `${path.join(dir, name)}: cannot read (${code ?? (error as Error).message})`);
      }
    },
  };
}
