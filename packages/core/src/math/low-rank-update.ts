/**
 * The one kernel of LoRA merging: `target[rows, cols] += scale · left[rows, rank] · right[rank, cols]`,
 * in place, row by row, accumulating each element in float64 before it is stored. Allocation-free:
 * every output element is read and written once, so it runs at memory speed for small ranks.
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
}): void {
  const { target, rows, cols, rank, left, right, scale } = params;
  const c = params.coefficients ?? new Float64Array(rank);
  for (let i = 0; i < rows; i++) {
    let any = false;
    for (let k = 0; k < rank; k++) {
      c[k] = scale * left[i * rank + k];
      if (c[k] !== 0) any = true;
    }
    if (!any) continue;
    const base = i * cols;
    if (rank === 1) {
      const c0 = c[0];
      for (let j = 0; j < cols; j++) target[base + j] += c0 * right[j];
    } else if (rank === 2) {
      const c0 = c[0], c1 = c[1];
      for (let j = 0; j < cols; j++) target[base + j] += c0 * right[j] + c1 * right[cols + j];
    } else if (rank === 4) {
      const c0 = c[0], c1 = c[1], c2 = c[2], c3 = c[3];
      const r1 = cols, r2 = 2 * cols, r3 = 3 * cols;
      for (let j = 0; j < cols; j++) {
        target[base + j] += c0 * right[j] + c1 * right[r1 + j] + c2 * right[r2 + j] + c3 * right[r3 + j];
      }
    } else if (rank === 8) {
      const c0 = c[0], c1 = c[1], c2 = c[2], c3 = c[3], c4 = c[4], c5 = c[5], c6 = c[6], c7 = c[7];
      for (let j = 0; j < cols; j++) {
        target[base + j] +=
          c0 * right[j] + c1 * right[cols + j] + c2 * right[2 * cols + j] + c3 * right[3 * cols + j] +
          c4 * right[4 * cols + j] + c5 * right[5 * cols + j] + c6 * right[6 * cols + j] + c7 * right[7 * cols + j];
      }
    } else {
      for (let j = 0; j < cols; j++) {
        let acc = 0;
        for (let k = 0; k < rank; k++) acc += c[k] * right[k * cols + j];
        target[base + j] += acc;
      }
    }
  }
}

/** Transposes a row-major [rows, cols] matrix into a new [cols, rows] one. */
export function transpose(matrix: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) out[j * rows + i] = matrix[i * cols + j];
  }
  return out;
}
