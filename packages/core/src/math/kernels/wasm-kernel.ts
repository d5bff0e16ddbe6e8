import { WASM_BASE64 } from "./low-rank-update.wasm.js";

interface KernelExports {
  memory: WebAssembly.Memory;
  addLowRankProduct(target: number, rows: number, cols: number, rank: number, left: number, right: number, scale: number, scratch: number): void;
}

let kernel: KernelExports | null | undefined;

/** The WebAssembly SIMD kernel, or null where WebAssembly SIMD is unavailable (then callers use plain JS). */
export function wasmKernel(): KernelExports | null {
  if (kernel !== undefined) return kernel;
  try {
    const module = new WebAssembly.Module(base64Bytes(WASM_BASE64));
    kernel = new WebAssembly.Instance(module, {}).exports as unknown as KernelExports;
  } catch {
    kernel = null;
  }
  return kernel;
}

const TARGET_BLOCK_BYTES = 256 * 1024;

/**
 * target[rows, cols] += scale · left[rows, rank] · right[rank, cols] on the WebAssembly SIMD kernel:
 * `right` is copied into the module's memory once, then the target passes through in blocks of
 * rows that stay in cache (copy in, update, copy out).
 */
export function addLowRankProductWasm(
  k: KernelExports,
  target: Float32Array,
  rows: number,
  cols: number,
  rank: number,
  left: Float32Array,
  right: Float32Array,
  scale: number,
): void {
  const align = (n: number): number => (n + 15) & ~15;
  const rowsPerBlock = Math.max(1, Math.min(rows, Math.floor(TARGET_BLOCK_BYTES / (cols * 4))));
  const scratch = 0;
  const rightAt = align(rank * 4);
  const leftAt = align(rightAt + rank * cols * 4);
  const targetAt = align(leftAt + rowsPerBlock * rank * 4);
  const needed = targetAt + rowsPerBlock * cols * 4;
  const have = k.memory.buffer.byteLength;
  if (needed > have) k.memory.grow(Math.ceil((needed - have) / 65536));
  const heap = new Float32Array(k.memory.buffer);
  heap.set(right.subarray(0, rank * cols), rightAt / 4);
  for (let start = 0; start < rows; start += rowsPerBlock) {
    const n = Math.min(rowsPerBlock, rows - start);
    heap.set(left.subarray(start * rank, (start + n) * rank), leftAt / 4);
    heap.set(target.subarray(start * cols, (start + n) * cols), targetAt / 4);
    k.addLowRankProduct(targetAt, n, cols, rank, leftAt, rightAt, scale, scratch);
    target.set(heap.subarray(targetAt / 4, targetAt / 4 + n * cols), start * cols);
  }
}

/** Base64 text as bytes (atob: in browsers and Node alike). */
function base64Bytes(text: string): Uint8Array<ArrayBuffer> {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}
