import { z } from "zod";

/** PEFT's task types. Others are kept as written. */
export const TASK_TYPES = ["CAUSAL_LM", "SEQ_CLS", "SEQ_2_SEQ_LM", "TOKEN_CLS", "QUESTION_ANS", "FEATURE_EXTRACTION"] as const;

const stringList = z.array(z.string());
const targetSpec = z.union([z.string(), stringList]).nullable();

/**
 * The fields of PEFT's LoraConfig that lowrank models, with PEFT's defaults. Keys are PEFT's own
 * (snake_case), so an adapter_config.json maps onto it one to one.
 */
export const loraConfigSchema = z.object({
  peft_type: z.literal("LORA"),
  r: z.number().int().positive(),
  lora_alpha: z.number().finite(),
  target_modules: targetSpec.default(null),
  exclude_modules: targetSpec.default(null),
  lora_dropout: z.number().min(0).max(1).default(0),
  fan_in_fan_out: z.boolean().default(false),
  bias: z.enum(["none", "all", "lora_only"]).default("none"),
  use_rslora: z.boolean().default(false),
  modules_to_save: stringList.nullable().default(null),
  init_lora_weights: z.union([z.boolean(), z.string()]).default(true),
  layers_to_transform: z.union([z.number().int().nonnegative(), z.array(z.number().int().nonnegative())]).nullable().default(null),
  layers_pattern: z.union([z.string(), stringList]).nullable().default(null),
  rank_pattern: z.record(z.string(), z.number().int().positive()).default({}),
  alpha_pattern: z.record(z.string(), z.number().finite()).default({}),
  use_dora: z.boolean().default(false),
  lora_bias: z.boolean().default(false),
  task_type: z.string().nullable().default(null),
  base_model_name_or_path: z.string().nullable().default(null),
  revision: z.string().nullable().default(null),
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
  "runtime_config", "use_qalora", "qalora_group_size", "trainable_token_indices", "eva_config", "corda_config",
  "target_parameters", "alora_invocation_tokens", "arrow_config", "ensure_weight_tying", "layers_to_transform",
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
