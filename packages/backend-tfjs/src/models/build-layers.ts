import { LowrankError, type ModelDescription } from "@lowrank/core";
import { EmbeddingLayer } from "../layers/embedding-layer.js";
import { LinearLayer } from "../layers/linear-layer.js";
import type { ParamStore } from "../layers/param-store.js";

/**
 * A LinearLayer or EmbeddingLayer for every linear, Conv1D and embedding module that core's model
 * description found, under the same names — so core's targeting applies to them as they are.
 */
export function buildLayers(description: ModelDescription, store: ParamStore): { linears: Map<string, LinearLayer>; embeddings: Map<string, EmbeddingLayer> } {
  const linears = new Map<string, LinearLayer>();
  const embeddings = new Map<string, EmbeddingLayer>();
  for (const m of description.modules) {
    if (m.kind === "linear" || m.kind === "conv1d") {
      linears.set(m.name, new LinearLayer(m.name, store, m.weightKey!, m.biasKey, m.layout!, m.inFeatures!, m.outFeatures!));
    } else if (m.kind === "embedding") {
      embeddings.set(m.name, new EmbeddingLayer(m.name, store, m.weightKey!));
    }
  }
  return { linears, embeddings };
}

/** A layer by name, or a one-line error naming what the checkpoint lacks. */
export function requireLayer<T>(map: ReadonlyMap<string, T>, name: string, label: string): T {
  const layer = map.get(name);
  if (!layer) throw new LowrankError("CHECKPOINT_INVALID", `${label}: the checkpoint has no module "${name}"`);
  return layer;
}

/** The checkpoint's prefix before the base model's modules ("transformer.", "model.", "roberta." or ""). */
export function detectPrefix(keys: Iterable<string>, candidates: string[], probe: string, label: string): string {
  const all = new Set(keys);
  for (const prefix of candidates) if (all.has(`${prefix}${probe}`)) return prefix;
  throw new LowrankError(
    "CHECKPOINT_INVALID",
    `${label}: no tensor "${probe}" under any of the prefixes ${candidates.map((c) => JSON.stringify(c)).join(", ")}`,
  );
}
