import { addLowRankProductWasm, wasmKernel } from "./kernels/wasm-kernel.js";

/** Below this many output elements the plain-JS loop is used (no copy into WebAssembly memory). */
const WASM_MIN_ELEMENTS = 16_384;

/**
 * The one kernel of LoRA merging: `target[rows, cols] += scale · left[rows, rank] · right[rank, cols]`,
 * in place. Large updates run on a WebAssembly SIMD kernel (float32 multiply-adds, four or eight
 * columns at a time, rows streamed through cache); small ones, or where WebAssembly SIMD is missing,
 * on a plain loop that accumulates in float64. Either way each output element is read and written
 * once and nothing is allocated per element.
 */
export function addLowRankProduct(params: {
  target: Float32Array;
  rows: number;
  cols: number;
  rank: number;
  /** Row-major [rows, rank]. */
  left: Float32Array;
  /** Row-major [rank, cols]. */
  right: Float32Array;
  scale: number;
  /** Scratch of length ≥ rank (avoids allocating per call in hot loops). */
  coefficients?: Float64Array;
  /** Use the plain-JS loop even for large updates (tests and benchmarks compare the two). */
  forceJs?: boolean;
}): void {
  const { target, rows, cols, rank, left, right, scale } = params;
  const kernel = rows * cols >= WASM_MIN_ELEMENTS && !params.forceJs ? wasmKernel() : null;
  if (kernel) {
    addLowRankProductWasm(kernel, target, rows, cols, rank, left, right, scale);
    return;
  }
  const c = params.coefficients ?? new Float64Array(rank);
  for (let i = 0; i < rows; i++) {
    // No shortcut for zero coefficients: 0 · NaN must still poison the row, as in PyTorch.
    for (let k = 0; k < rank; k++) c[k] = scale * left[i * rank + k]!;
    const base = i * cols;
    if (rank === 1) {
      const c0 = c[0]!;
      for (let j = 0; j < cols; j++) target[base + j]! += c0 * right[j]!;
    } else if (rank === 2) {
      const c0 = c[0]!,
        c1 = c[1]!;
      for (let j = 0; j < cols; j++) target[base + j]! += c0 * right[j]! + c1 * right[cols + j]!;
    } else if (rank === 4) {
      const c0 = c[0]!,
        c1 = c[1]!,
        c2 = c[2]!,
        c3 = c[3]!;
      const r1 = cols,
        r2 = 2 * cols,
        r3 = 3 * cols;
      for (let j = 0; j < cols; j++) {
        target[base + j]! += c0 * right[j]! + c1 * right[r1 + j]! + c2 * right[r2 + j]! + c3 * right[r3 + j]!;
      }
    } else if (rank === 8) {
      const c0 = c[0]!,
        c1 = c[1]!,
        c2 = c[2]!,
        c3 = c[3]!,
        c4 = c[4]!,
        c5 = c[5]!,
        c6 = c[6]!,
        c7 = c[7]!;
      for (let j = 0; j < cols; j++) {
        target[base + j]! +=
          c0 * right[j]! +
          c1 * right[cols + j]! +
          c2 * right[2 * cols + j]! +
          c3 * right[3 * cols + j]! +
          c4 * right[4 * cols + j]! +
          c5 * right[5 * cols + j]! +
          c6 * right[6 * cols + j]! +
          c7 * right[7 * cols + j]!;
      }
    } else {
      for (let j = 0; j < cols; j++) {
        let acc = 0;
        for (let k = 0; k < rank; k++) acc += c[k]! * right[k * cols + j]!;
        target[base + j]! += acc;
      }
    }
  }
}

/** Transposes a row-major [rows, cols] matrix into a new [cols, rows] one. */
export function transpose(matrix: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) out[j * rows + i] = matrix[i * cols + j]!;
  }
  return out;
}
