import { LowrankError } from "@lowrank/core";
import { ConfigValues, type RelativePositionParams } from "@lowrank/core/internal";

/** `pos_att_type` as a list (configs write it as a list or as "p2c|c2p"). */
function positionTerms(value: unknown): string[] {
  const list = typeof value === "string" ? value.toLowerCase().split("|") : Array.isArray(value) ? value : [];
  return list.filter((t): t is string => typeof t === "string").map((t) => t.trim());
}

/** What a DeBERTa-v2 config.json says, read once for the inference and the training graph. */
export interface DebertaSettings {
  hidden: number;
  heads: number;
  headDim: number;
  layers: number;
  eps: number;
  act: string;
  poolerAct: string;
  /** The position terms of disentangled attention (`pos_att_type`). */
  c2p: boolean;
  p2c: boolean;
  shareKey: boolean;
  /** √(head_dim · (1 + number of position terms)), which every score term is divided by. */
  scale: number;
  positionBiased: boolean;
  /** 0: no convolution layer. */
  convKernel: number;
  /** With relative_attention: the bucketing, the table rows used (2·span), whether the table is LayerNorm'd (norm_rel_ebd). */
  relative?: { params: RelativePositionParams; rows: number; normalise: boolean };
}

/** Reads a DeBERTa-v2 / v3 config.json as transformers 4.43 does. @throws LowrankError CHECKPOINT_INVALID naming a missing field. */
export function debertaSettings(config: Record<string, unknown>, label: string): DebertaSettings {
  const c = new ConfigValues(config, label);
  const hidden = c.number("hidden_size");
  const heads = c.number("num_attention_heads");
  const headDim = c.number("attention_head_size", Math.floor(hidden / heads));
  const terms = positionTerms(config.pos_att_type);
  const c2p = terms.includes("c2p");
  const p2c = terms.includes("p2c");
  let relative: DebertaSettings["relative"];
  if (c.boolean("relative_attention", false)) {
    const maxRelative = c.number("max_relative_positions", -1);
    const maxPosition = maxRelative < 1 ? c.number("max_position_embeddings") : maxRelative;
    const buckets = c.number("position_buckets", -1);
    const span = buckets > 0 ? buckets : maxPosition;
    const norms = c
      .string("norm_rel_ebd", "none")
      .toLowerCase()
      .split("|")
      .map((x) => x.trim());
    relative = { params: { buckets, maxPosition, span }, rows: 2 * span, normalise: norms.includes("layer_norm") };
  }
  return {
    hidden,
    heads,
    headDim,
    layers: c.number("num_hidden_layers"),
    eps: c.number("layer_norm_eps", 1e-7),
    act: c.string("hidden_act", "gelu"),
    poolerAct: c.string("pooler_hidden_act", "gelu"),
    c2p,
    p2c,
    shareKey: c.boolean("share_att_key", false),
    // transformers counts the position terms in the scale even when relative_attention is off.
    scale: Math.sqrt(headDim * (1 + Number(c2p) + Number(p2c))),
    positionBiased: c.boolean("position_biased_input", true),
    convKernel: c.number("conv_kernel_size", 0),
    relative,
  };
}

/**
 * The relative-position table's checkpoint name and stored rows, checked against what the settings
 * need. @throws LowrankError CHECKPOINT_INVALID when it is missing or too short.
 */
export function relativeTable(
  settings: DebertaSettings,
  source: { label: string; prefix: string; shapeOf(name: string): readonly number[] | undefined },
): { name: string; stored: number } | undefined {
  const rows = settings.relative?.rows;
  if (rows === undefined) return undefined;
  const name = `${source.prefix}encoder.rel_embeddings.weight`;
  const stored = source.shapeOf(name)?.[0];
  if (stored === undefined)
    throw new LowrankError("CHECKPOINT_INVALID", `${source.label}: config.json \`relative_attention\` is true but the checkpoint has no "${name}"`);
  if (stored < rows)
    throw new LowrankError(
      "CHECKPOINT_INVALID",
      `${source.label}: encoder.rel_embeddings has ${stored} rows, but \`position_buckets\` / \`max_relative_positions\` need ${rows}`,
    );
  return { name, stored };
}

/**
 * The relative-position table's rows that `module` projects, and whether it projects the batch's
 * tokens too: with share_att_key the layer's own query_proj (p2c) and key_proj (c2p) project both;
 * without it pos_query_proj (p2c) and pos_key_proj (c2p) project the table alone. Undefined for a
 * module that reads no table row (every other, and a position projection the attention does not use).
 */
export function tableRowsThrough(settings: DebertaSettings, module: string): { rows: number; tokens: boolean } | undefined {
  const rows = settings.relative?.rows;
  if (rows === undefined) return undefined;
  const self = ".attention.self.";
  const [query, key] = settings.shareKey ? ["query_proj", "key_proj"] : ["pos_query_proj", "pos_key_proj"];
  if ((settings.p2c && module.endsWith(self + query)) || (settings.c2p && module.endsWith(self + key))) return { rows, tokens: settings.shareKey };
  return undefined;
}
