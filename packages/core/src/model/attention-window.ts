import { LowrankError } from "../errors/lowrank-error.js";

/**
 * The sliding attention window a causal checkpoint asks for, as transformers 4.43's eager attention
 * applies it: Mistral and Mixtral let a token attend to itself and the `sliding_window − 1` tokens
 * before it (key j is visible from query i when i − window < j ≤ i). Undefined means full causal
 * attention. Qwen2 applies its window (`use_sliding_window`) only in flash attention, per layer from
 * `max_window_layers`: such a config is refused rather than run differently from its training.
 * @throws LowrankError CHECKPOINT_INVALID for a window that is not a positive integer, or Qwen2's.
 */
export function attentionWindow(config: Record<string, unknown>, label: string): number | undefined {
  const type = config.model_type;
  if (type === "qwen2" && config.use_sliding_window === true) {
    throw new LowrankError(
      "CHECKPOINT_INVALID",
      `${label}/config.json: \`use_sliding_window\` true (Qwen2's per-layer window) is not supported; lowrank would attend past the window`,
    );
  }
  if (type !== "mistral" && type !== "mixtral") return undefined;
  const window = config.sliding_window;
  if (window === undefined || window === null) return undefined;
  if (typeof window !== "number" || !Number.isInteger(window) || window < 1) {
    throw new LowrankError("CHECKPOINT_INVALID", `${label}/config.json: \`sliding_window\` must be a positive integer or null, got ${JSON.stringify(window)}`);
  }
  return window;
}
