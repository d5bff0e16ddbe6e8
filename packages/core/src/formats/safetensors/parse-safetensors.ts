import type { Tensor } from "./dtype.js";
import { parseHeader, readHeaderLength } from "./parse-header.js";

/**
 * Every tensor of a safetensors file held in memory (fetched, dropped on a page), with the checks of
 * the file reader. Tensors are copies: aligned, and independent of `bytes`.
 * @throws LowrankError SAFETENSORS_INVALID naming `label`.
 */
export function parseSafetensors(bytes: Uint8Array, label: string): { tensors: Map<string, Tensor>; metadata?: Record<string, string> } {
  const n = readHeaderLength(bytes.subarray(0, 8), bytes.byteLength, label);
  const header = parseHeader(bytes.subarray(8, 8 + n), bytes.byteLength - 8 - n, label);
  const tensors = new Map<string, Tensor>();
  for (const e of header.entries) {
    const data = bytes.slice(header.dataStart + e.begin, header.dataStart + e.end);
    tensors.set(e.name, { dtype: e.dtype, shape: [...e.shape], data });
  }
  return { tensors, metadata: header.metadata };
}
