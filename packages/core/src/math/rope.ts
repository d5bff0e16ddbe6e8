import { LowrankError } from "../errors/lowrank-error.js";

/** transformers' `rope_scaling` settings that change the rotary frequencies. */
export interface RopeScaling {
  rope_type?: string;
  type?: string;
  factor?: number;
  low_freq_factor?: number;
  high_freq_factor?: number;
  original_max_position_embeddings?: number;
}

/**
 * Rotary inverse frequencies 1/θ^(2i/d) as transformers computes them, with "llama3" scaling
 * applied to the frequencies and "linear" scaling returned as a divisor of the positions.
 * @throws LowrankError CHECKPOINT_INVALID naming `label` for another scaling type.
 */
export function ropeFrequencies(
  headDim: number,
  theta: number,
  scaling: RopeScaling | null | undefined,
  label = "config.json",
): { inv: Float64Array; positionScale: number } {
  const inv = Float64Array.from({ length: headDim / 2 }, (_, i) => 1 / theta ** ((2 * i) / headDim));
  const kind = scaling?.rope_type ?? scaling?.type ?? "default";
  const factor = scaling?.factor ?? 1;
  if (kind === "default") return { inv, positionScale: 1 };
  if (kind === "linear") return { inv, positionScale: factor };
  if (kind === "llama3") {
    const low = scaling?.low_freq_factor ?? 1;
    const high = scaling?.high_freq_factor ?? 4;
    const oldContext = scaling?.original_max_position_embeddings ?? 8192;
    return {
      positionScale: 1,
      inv: inv.map((f) => {
        const wavelen = (2 * Math.PI) / f;
        if (wavelen < oldContext / high) return f;
        if (wavelen > oldContext / low) return f / factor;
        const smooth = (oldContext / wavelen - low) / (high - low);
        return (1 - smooth) * (f / factor) + smooth * f;
      }),
    };
  }
  throw new LowrankError("CHECKPOINT_INVALID", `${label}: \`rope_scaling\` type ${JSON.stringify(kind)} is not supported (default, linear, llama3 are)`);
}
