// File access of the ONNX backend in the browser (swapped in for files.ts by the browser build):
// models and adapters arrive as bytes (fetched, dropped, from OPFS), so paths are never read.
import { LowrankError } from "@lowrank/core";

export const CAN_READ_PATHS = false;

export const dirname = (file: string): string => file.slice(0, Math.max(0, file.lastIndexOf("/"))) || ".";
export const joinPath = (...parts: string[]): string => parts.join("/").replace(/\/+/g, "/");
export const isAbsolutePath = (file: string): boolean => file.startsWith("/") || /^[a-z]+:/i.test(file);
export const defaultModelDir = (): string => ".";

const noPaths = (file: string, what: string): LowrankError =>
  new LowrankError("USAGE", `${file}: ${what} is not read by path in the browser; fetch the bytes and give them instead`);

export async function readModelBytes(file: string): Promise<Uint8Array> {
  throw noPaths(file, "a model");
}

/** No config files beside a model in the browser: callers fall back to what the graph says. */
export function readJsonIfPresent(_dir: string, _name: string): unknown {
  return undefined;
}

export function readFileRange(file: string, _offset: number, _length: number, what: string): Uint8Array {
  throw new LowrankError(
    "CHECKPOINT_INVALID",
    `${what}: keeps its weights in an external data file (${file}); in the browser give a model with its weights inside the .onnx file`,
  );
}

export async function withTempModelFile<T>(dir: string, _bytes: Uint8Array, _use: (file: string) => Promise<T>): Promise<T> {
  throw new LowrankError(
    "CHECKPOINT_INVALID",
    `a model with external data (in ${dir}) cannot be opened in the browser; give one with its weights inside the .onnx file`,
  );
}
