import os from "node:os";
import type { Logger } from "@lowrank/core";

/** A decoder's block shape from config.json (GPT-2's or the LLaMA family's keys), or undefined for other models. */
function decoderShape(config: Record<string, unknown>) {
  const num = (...keys: string[]) => keys.map((k) => config[k]).find((v): v is number => typeof v === "number");
  const layers = num("n_layer", "num_hidden_layers");
  const hidden = num("n_embd", "hidden_size");
  const heads = num("n_head", "num_attention_heads");
  if (layers === undefined || hidden === undefined || heads === undefined) return undefined;
  return { layers, hidden, heads, intermediate: num("n_inner", "intermediate_size") ?? 4 * hidden };
}

/**
 * The bytes of activations a decoder's training step holds from the forward pass for the backward
 * one, float32: per token and block 2 hidden-sized vectors, 1 of the MLP's width and a row of
 * attention probabilities per head — a fit of what recomputation frees on a GPT-2-small-shaped model
 * (0.55 GB at 16 × 128, 0.14 GB at 4 × 128; ONNX Runtime reuses the rest of a block's buffers).
 * Undefined for models without decoder blocks.
 */
export function heldActivationBytes(config: Record<string, unknown>, batch: number, seq: number): number | undefined {
  const s = decoderShape(config);
  if (!s) return undefined;
  return 4 * batch * seq * s.layers * (2 * s.hidden + s.intermediate + s.heads * seq);
}

/**
 * Whether a run recomputes activations: as asked (`gradientCheckpointing`), else only when the held
 * activations would take more than half of the memory free now — said in the log either way.
 */
export function chooseRecompute(
  asked: boolean | undefined,
  run: { config: Record<string, unknown>; batch: number; seq: number; logger?: Logger; freeBytes?: number },
): boolean {
  if (asked !== undefined) return asked;
  const held = heldActivationBytes(run.config, run.batch, run.seq);
  const free = run.freeBytes ?? os.freemem();
  if (held === undefined || held <= free / 2) return false;
  run.logger?.warn(
    `onnx trainer: activations of ${(held / 1e9).toFixed(1)} GB would exceed half the free memory (${(free / 1e9).toFixed(1)} GB): ` +
      "recomputing them per block in the backward pass (gradient checkpointing; --no-gradient-checkpointing to hold them)",
  );
  return true;
}
