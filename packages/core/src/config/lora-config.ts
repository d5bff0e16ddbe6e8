import * as z from "zod";

/** PEFT's task types. Others are kept as written. */
export const TASK_TYPES = ["CAUSAL_LM", "SEQ_CLS", "SEQ_2_SEQ_LM", "TOKEN_CLS", "QUESTION_ANS", "FEATURE_EXTRACTION"] as const;

const stringList = z.array(z.string());
const targetSpec = z.union([z.string(), stringList]).nullable();

/**
 * The fields of PEFT's LoraConfig that lowrank models, with PEFT's defaults. Keys are PEFT's own
 * (snake_case), so an adapter_config.json maps onto it one to one.
 */
export const loraConfigSchema = z.object({
  /** The PEFT method: always "LORA" here (DoRA and rsLoRA are LoRA options). */
  peft_type: z.literal("LORA"),
  /** Rank of the update: lora_A is [r, in], lora_B is [out, r]. */
  r: z.number().int().positive(),
  /** Scaling numerator: the update is (lora_alpha / r)·B·A, or (lora_alpha / √r)·B·A with use_rslora. */
  lora_alpha: z.number().finite(),
  /** Modules to adapt: names matched as suffixes of module paths, a full-match regex string, "all-linear", or null for PEFT's default for the model type. */
  target_modules: targetSpec.default(null),
  /** Modules never to adapt, even if target_modules matches them (same matching rules). */
  exclude_modules: targetSpec.default(null),
  /** Dropout probability on the input of the LoRA branch during training (0 = none). */
  lora_dropout: z.number().min(0).max(1).default(0),
  /** True when the base weights are stored input by output (GPT-2's Conv1D); the layer type decides, as in PEFT. */
  fan_in_fan_out: z.boolean().default(false),
  /** Which base biases are trained and saved: none, all, or only those of adapted modules. */
  bias: z.enum(["none", "all", "lora_only"]).default("none"),
  /** Rank-stabilised LoRA: scale by lora_alpha / √r instead of lora_alpha / r. */
  use_rslora: z.boolean().default(false),
  /** Modules (besides the LoRA ones) trained in full and saved whole, e.g. a classification head. */
  modules_to_save: stringList.nullable().default(null),
  /** How A and B start: true (Kaiming A, zero B), false (both random), "gaussian", "pissa", "olora", … */
  init_lora_weights: z.union([z.boolean(), z.string()]).default(true),
  /** Only adapt these layer indexes (with layers_pattern naming the layer container). */
  layers_to_transform: z
    .union([z.number().int().nonnegative(), z.array(z.number().int().nonnegative())])
    .nullable()
    .default(null),
  /** Name(s) of the module list that holds the layers ("layers", "h"), for layers_to_transform. */
  layers_pattern: z.union([z.string(), stringList]).nullable().default(null),
  /** Per-module ranks overriding r, keyed by a module name or regex (PEFT's lookup). */
  rank_pattern: z.record(z.string(), z.number().int().positive()).default({}),
  /** Per-module alphas overriding lora_alpha, keyed like rank_pattern. */
  alpha_pattern: z.record(z.string(), z.number().finite()).default({}),
  /** Weight-decomposed LoRA: a trained magnitude per output scales the normalised updated weight. */
  use_dora: z.boolean().default(false),
  /** Whether lora_B has a bias of its own (PEFT 0.14+; written only when true). */
  lora_bias: z.boolean().default(false),
  /** The model head the adapter was made for: CAUSAL_LM, SEQ_CLS, … (see TASK_TYPES). */
  task_type: z.string().nullable().default(null),
  /** The base model as the user named it: a Hub id or a local path. */
  base_model_name_or_path: z.string().nullable().default(null),
  /** The base model's Hub revision, when one was pinned. */
  revision: z.string().nullable().default(null),
  /** True in saved adapters: the factors are frozen when loaded. */
  inference_mode: z.boolean().default(false),
});

type Modelled = z.infer<typeof loraConfigSchema>;

/** How the config looked in its file, so that writing it back reproduces the bytes. */
export interface ConfigSource {
  /** Keys present in the file. */
  keys: string[];
  /** JSON Pointers of numbers written as floats. */
  floatPaths: string[];
}

/**
 * A LoRA adapter configuration: PEFT's adapter_config.json. `extra` holds every key lowrank does not
 * model (from PEFT's own set or from newer PEFT versions); they survive a read/write round trip.
 */
export interface LoraConfig extends Modelled {
  extra: Record<string, unknown>;
  source?: ConfigSource;
}

export type LoraConfigInput = Partial<Omit<LoraConfig, "peft_type">> & { r?: number; lora_alpha?: number };

/** Keys of PEFT 0.12's LoraConfig that lowrank carries through without interpreting them. */
export const PEFT_PASSTHROUGH_DEFAULTS: Readonly<Record<string, unknown>> = {
  auto_mapping: null,
  layer_replication: null,
  loftq_config: {},
  megatron_config: null,
  megatron_core: "megatron.core",
};

/** Keys of newer PEFT versions that PEFT 0.12 would reject: written only when not at their default. */
export const NEWER_PEFT_KEYS: Readonly<Record<string, unknown>> = {
  exclude_modules: null,
  lora_bias: false,
};

/** Every key that some PEFT release knows, so reading one of them is not worth a warning. */
export const KNOWN_PEFT_KEYS: ReadonlySet<string> = new Set([
  ...Object.keys(loraConfigSchema.shape),
  ...Object.keys(PEFT_PASSTHROUGH_DEFAULTS),
  "runtime_config",
  "use_qalora",
  "qalora_group_size",
  "trainable_token_indices",
  "eva_config",
  "corda_config",
  "target_parameters",
  "alora_invocation_tokens",
  "arrow_config",
  "ensure_weight_tying",
  "layers_to_transform",
  "peft_version",
]);

/**
 * Builds a config with PEFT's defaults (r 8, lora_alpha 8) for the fields not given.
 * @example createLoraConfig({ r: 4, lora_alpha: 8, target_modules: ["q_proj", "v_proj"] })
 */
export function createLoraConfig(input: LoraConfigInput = {}): LoraConfig {
  const { extra, source, ...fields } = input;
  const parsed = loraConfigSchema.parse({ peft_type: "LORA", r: 8, lora_alpha: 8, ...fields });
  return { ...parsed, extra: { ...PEFT_PASSTHROUGH_DEFAULTS, ...(extra ?? {}) }, ...(source ? { source } : {}) };
}
