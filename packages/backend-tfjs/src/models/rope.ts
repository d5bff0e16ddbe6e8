import * as tf from "@tensorflow/tfjs";
import { LowrankError } from "@lowrank/core";

/** transformers' rope_scaling settings that change the inverse frequencies. */
export interface RopeScaling {
  rope_type?: string;
  type?: string;
  factor?: number;
  low_freq_factor?: number;
  high_freq_factor?: number;
  original_max_position_embeddings?: number;
}

/** Inverse frequencies 1/θ^(2i/d), with "linear" or "llama3" scaling applied as transformers does. */
export function inverseFrequencies(headDim: number, theta: number, scaling: RopeScaling | null | undefined): Float64Array {
  const inv = Float64Array.from({ length: headDim / 2 }, (_, i) => 1 / theta ** ((2 * i) / headDim));
  const kind = scaling?.rope_type ?? scaling?.type ?? "default";
  if (kind === "default") return inv;
  const factor = scaling?.factor ?? 1;
  if (kind === "linear") return inv; // applied to positions instead
  if (kind === "llama3") {
    const low = scaling?.low_freq_factor ?? 1;
    const high = scaling?.high_freq_factor ?? 4;
    const oldContext = scaling?.original_max_position_embeddings ?? 8192;
    const lowWavelen = oldContext / low;
    const highWavelen = oldContext / high;
    return inv.map((f) => {
      const wavelen = (2 * Math.PI) / f;
      if (wavelen < highWavelen) return f;
      if (wavelen > lowWavelen) return f / factor;
      const smooth = (oldContext / wavelen - low) / (high - low);
      return (1 - smooth) * (f / factor) + smooth * f;
    });
  }
  throw new LowrankError("CHECKPOINT_INVALID", `config.json \`rope_scaling\` type ${JSON.stringify(kind)} is not supported (default, linear, llama3 are)`);
}

/** cos and sin tables [s, d] for positions start..start+s−1 (halves repeated, as transformers builds them). */
export function ropeTables(inv: Float64Array, start: number, length: number, positionScale: number): { cos: tf.Tensor2D; sin: tf.Tensor2D } {
  const d = inv.length * 2;
  const cos = new Float32Array(length * d);
  const sin = new Float32Array(length * d);
  for (let p = 0; p < length; p++) {
    const pos = (start + p) / positionScale;
    for (let i = 0; i < inv.length; i++) {
      const angle = Math.fround(Math.fround(inv[i]) * pos);
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
  const rotated = tf.concat([tf.neg(x2), x1], 3);
  return tf.add(tf.mul(x, cos), tf.mul(rotated, sin)) as tf.Tensor4D;
}
