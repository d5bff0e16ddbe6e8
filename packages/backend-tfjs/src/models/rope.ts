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

/** x·cos + rotate_half(x)·sin on [b, h, s, d]. */
export function applyRope(x: tf.Tensor4D, cos: tf.Tensor2D, sin: tf.Tensor2D): tf.Tensor4D {
  const half = x.shape[3] / 2;
  const [x1, x2] = tf.split(x, [half, half], 3);
  const rotated = tf.concat([tf.neg(x2!), x1!], 3);
  return tf.add(tf.mul(x, cos), tf.mul(rotated, sin)) as tf.Tensor4D;
}
