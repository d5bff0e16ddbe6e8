import * as tf from "@tensorflow/tfjs";

/** cos and sin tables [s, d] for positions start..start+s−1 (halves repeated, as transformers builds them). */
export function ropeTables(inv: Float64Array, start: number, length: number, positionScale: number): { cos: tf.Tensor2D; sin: tf.Tensor2D } {
  const d = inv.length * 2;
  const cos = new Float32Array(length * d);
  const sin = new Float32Array(length * d);
  for (let p = 0; p < length; p++) {
    const pos = (start + p) / positionScale;
    for (let i = 0; i < inv.length; i++) {
      const angle = Math.fround(Math.fround(inv[i]!) * pos);
      cos[p * d + i] = cos[p * d + i + inv.length] = Math.cos(angle);
      sin[p * d + i] = sin[p * d + i + inv.length] = Math.sin(angle);
    }
  }
  return { cos: tf.tensor2d(cos, [length, d]), sin: tf.tensor2d(sin, [length, d]) };
}

/** The tables for per-row positions [b][s] (packed sequences): [b, 1, s, d], the angles as ropeTables computes them. */
export function ropeTablesAt(inv: Float64Array, positions: readonly (readonly number[])[], positionScale: number): { cos: tf.Tensor4D; sin: tf.Tensor4D } {
  const d = inv.length * 2;
  const b = positions.length;
  const s = positions[0]?.length ?? 0;
  const cos = new Float32Array(b * s * d);
  const sin = new Float32Array(b * s * d);
  positions.forEach((row, r) =>
    row.forEach((position, p) => {
      const pos = position / positionScale;
      const at = (r * s + p) * d;
      for (let i = 0; i < inv.length; i++) {
        const angle = Math.fround(Math.fround(inv[i]!) * pos);
        cos[at + i] = cos[at + i + inv.length] = Math.cos(angle);
        sin[at + i] = sin[at + i + inv.length] = Math.sin(angle);
      }
    }),
  );
  return { cos: tf.tensor4d(cos, [b, 1, s, d]), sin: tf.tensor4d(sin, [b, 1, s, d]) };
}

/** x·cos + rotate_half(x)·sin on [b, h, s, d]; the tables [s, d], or [b, 1, s, d] per row. */
export function applyRope(x: tf.Tensor4D, cos: tf.Tensor, sin: tf.Tensor): tf.Tensor4D {
  const half = x.shape[3] / 2;
  const [x1, x2] = tf.split(x, [half, half], 3);
  const rotated = tf.concat([tf.neg(x2!), x1!], 3);
  return tf.add(tf.mul(x, cos), tf.mul(rotated, sin)) as tf.Tensor4D;
}
