/**
 * Memory bandwidth from a measured in-memory copy, counted as STREAM counts its Copy: copying N
 * bytes reads N and writes N, so it moves 2N (the merge table's copy GB/s counts N). One thread
 * copies (TypedArray.set), so a runtime decoding on every core may draw somewhat more.
 */
export function copyBandwidthGbPerS(copiedGbPerS: number): number {
  return 2 * copiedGbPerS;
}

/**
 * The physical bound on decoding at batch 1: every step reads each weight once, so no runtime makes
 * more tokens per second than memory delivers the weights: bandwidth ÷ weight bytes.
 */
export function decodeFloorTokensPerSecond(weightBytes: number, bandwidthGbPerS: number): number {
  if (!(weightBytes > 0)) throw new Error(`bench: decode floor needs the weight bytes, got ${weightBytes}`);
  return (bandwidthGbPerS * 1e9) / weightBytes;
}
