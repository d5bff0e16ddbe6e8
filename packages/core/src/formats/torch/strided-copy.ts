import type { Fail } from "./torch-globals.js";

/** A strided view of a storage, in elements. */
export interface StridedView {
  storage: Uint8Array;
  itemSize: number;
  storageOffset: number;
  size: readonly number[];
  stride: readonly number[];
  /** Refuse to produce more than this many bytes (guards against forged sizes). */
  maxBytes: number;
}

/**
 * Copies a strided view of a storage into a fresh contiguous row-major buffer, after checking that every addressed
 * element lies inside the storage and that the result fits in `maxBytes`.
 */
export function copyStridedTensor(view: StridedView, fail: Fail): Uint8Array {
  const { storage, itemSize, storageOffset, size, stride } = view;
  const numel = countElements(size, itemSize, view.maxBytes, fail);
  if (numel === 0) return new Uint8Array(0);
  const storageElements = Math.floor(storage.length / itemSize);
  let lastIndex = storageOffset;
  size.forEach((extent, d) => {
    lastIndex += (extent - 1) * stride[d]!;
  });
  if (lastIndex >= storageElements) {
    throw fail(
      `addresses element ${lastIndex} (offset ${storageOffset}, size [${size.join(", ")}], stride [${stride.join(", ")}]) ` +
        `but its storage holds only ${storageElements} elements`,
    );
  }
  if (isContiguous(size, stride)) {
    return storage.slice(storageOffset * itemSize, (storageOffset + numel) * itemSize);
  }
  return gather(view, numel);
}

function countElements(size: readonly number[], itemSize: number, maxBytes: number, fail: Fail): number {
  let numel = 1;
  for (const extent of size) {
    numel *= extent;
    if (numel * itemSize > maxBytes) {
      throw fail(`has size [${size.join(", ")}], which needs more bytes than the ${maxBytes} available (forged size?)`);
    }
  }
  return numel;
}

function isContiguous(size: readonly number[], stride: readonly number[]): boolean {
  let expected = 1;
  for (let d = size.length - 1; d >= 0; d--) {
    if (size[d] !== 1 && stride[d] !== expected) return false;
    expected *= size[d]!;
  }
  return true;
}

/** Walks the view in row-major order with an odometer, copying the innermost dimension run by run. */
function gather(view: StridedView, numel: number): Uint8Array {
  const { storage, itemSize, size, stride } = view;
  const out = new Uint8Array(numel * itemSize);
  const last = size.length - 1;
  const inner = size[last]!;
  const innerStride = stride[last]!;
  const index = new Array<number>(last).fill(0);
  let base = view.storageOffset;
  let written = 0;
  for (let row = 0; row < numel / inner; row++) {
    if (innerStride === 1) {
      out.set(storage.subarray(base * itemSize, (base + inner) * itemSize), written);
      written += inner * itemSize;
    } else {
      for (let j = 0; j < inner; j++) {
        const start = (base + j * innerStride) * itemSize;
        for (let b = 0; b < itemSize; b++) out[written++] = storage[start + b]!;
      }
    }
    for (let d = last - 1; d >= 0; d--) {
      index[d]!++;
      base += stride[d]!;
      if (index[d]! < size[d]!) break;
      base -= stride[d]! * size[d]!;
      index[d] = 0;
    }
  }
  return out;
}
