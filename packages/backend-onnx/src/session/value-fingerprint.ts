/**
 * A 64-bit fingerprint of a float32 tensor's bytes (two FNV-1a hashes over its 32-bit words, with
 * different seeds, and its length): how a session that no longer holds a weight's values still
 * tells whether an adapter's saved copy of it is unchanged (PEFT's save_embedding_layers).
 */
export function valueFingerprint(bytes: Uint8Array): string {
  const whole = bytes.byteLength - (bytes.byteLength % 4);
  // A copy (new Uint8Array copies; a Buffer's slice would not) when the bytes are not 4-aligned.
  const aligned = bytes.byteOffset % 4 === 0 ? bytes : new Uint8Array(bytes);
  const words = new Uint32Array(aligned.buffer, aligned.byteOffset, whole / 4);
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ 0x5bd1e995;
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    a = Math.imul(a ^ w, 0x01000193);
    b = Math.imul(b ^ (w >>> 16) ^ (w << 16), 0x5bd1e995);
  }
  for (let i = whole; i < bytes.byteLength; i++) a = Math.imul(a ^ bytes[i]!, 0x01000193);
  return `${bytes.byteLength}:${(a >>> 0).toString(16)}:${(b >>> 0).toString(16)}`;
}
