// File access of the ONNX backend in Node. The browser build swaps this module for files.browser.ts
// (same exports), so no Node built-in reaches the browser entry.
import { closeSync, fstatSync, openSync, readFileSync, readSync } from "node:fs";
import { readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { LowrankError } from "@lowrank/core";

/** Whether model paths can be read here (false in the browser: models come as bytes). */
export const CAN_READ_PATHS = true;

export const dirname = (file: string): string => path.dirname(file);
export const joinPath = (...parts: string[]): string => path.join(...parts);
export const isAbsolutePath = (file: string): boolean => path.isAbsolute(file);
/** Where a model given as bytes looks for its external data and config.json by default. */
export const defaultModelDir = (): string => process.cwd();

/** @throws LowrankError CHECKPOINT_INVALID naming the file. */
export async function readModelBytes(file: string): Promise<Uint8Array> {
  try {
    return await readFile(file);
  } catch (error) {
    throw new LowrankError("CHECKPOINT_INVALID", `${file}: cannot read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
}

/** A folder's parsed JSON file, or undefined when absent or unreadable. */
export function readJsonIfPresent(dir: string, name: string): unknown {
  try {
    return JSON.parse(readFileSync(path.join(dir, name), "utf8"));
  } catch {
    return undefined;
  }
}

/**
 * `length` bytes at `offset` of a file (external tensor data), read synchronously.
 * @throws LowrankError CHECKPOINT_INVALID naming `what` and the file.
 */
export function readFileRange(file: string, offset: number, length: number, what: string): Uint8Array {
  let fd: number | undefined;
  try {
    fd = openSync(file, "r");
    if (offset + length > fstatSync(fd).size)
      throw new LowrankError("CHECKPOINT_INVALID", `${what}: external data range [${offset}, ${offset + length}) is beyond the end of ${file}`);
    const bytes = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const n = readSync(fd, bytes, done, length - done, offset + done);
      if (n === 0) throw new LowrankError("CHECKPOINT_INVALID", `${what}: ${file} ended early`);
      done += n;
    }
    return bytes;
  } catch (error) {
    if (error instanceof LowrankError) throw error;
    throw new LowrankError("CHECKPOINT_INVALID", `${what}: cannot read external data ${file} (${(error as NodeJS.ErrnoException).code})`);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * Runs `use` on a temporary file holding `bytes` in `dir` (so relative external-data paths resolve),
 * removed afterwards.
 */
export async function withTempModelFile<T>(dir: string, bytes: Uint8Array, use: (file: string) => Promise<T>): Promise<T> {
  const temp = path.join(dir, `.lowrank-session-${process.pid}-${Date.now()}.onnx`);
  await writeFile(temp, bytes);
  try {
    return await use(temp);
  } finally {
    await rm(temp, { force: true });
  }
}
