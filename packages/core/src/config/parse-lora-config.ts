// adapter_config.json from text or a parsed object (no file access: the browser entry uses it too).
import type * as z from "zod";
import { LowrankError } from "../errors/lowrank-error.js";
import { parseJson } from "../formats/json/parse-json.js";
import type { Logger } from "../logger.js";
import { KNOWN_PEFT_KEYS, loraConfigSchema, type LoraConfig } from "./lora-config.js";

function describeValue(value: unknown): string {
  const text = JSON.stringify(value);
  return text === undefined ? String(value) : text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function issueMessage(issue: z.core.$ZodIssue, raw: Record<string, unknown>): string {
  const field = issue.path.map(String).join(".");
  let value: unknown = raw;
  for (const key of issue.path) value = (value as Record<PropertyKey, unknown> | undefined)?.[key as PropertyKey];
  const got = value === undefined ? "it is missing" : `got ${describeValue(value)}`;
  const top = String(issue.path[0] ?? "");
  const expected: Record<string, string> = {
    r: "a positive integer",
    lora_alpha: "a number",
    lora_dropout: "a number from 0 to 1",
    bias: 'one of "none", "all", "lora_only"',
    target_modules: "a list of module names, a regex string or null",
    exclude_modules: "a list of module names, a regex string or null",
    modules_to_save: "a list of module names or null",
    init_lora_weights: 'true, false, "gaussian", "pissa" or "olora"',
    layers_to_transform: "a layer index, a list of indexes or null",
    layers_pattern: "a string, a list of strings or null",
    rank_pattern: "an object from module pattern to positive integer rank",
    alpha_pattern: "an object from module pattern to number",
  };
  const want = expected[top] ?? issue.message.replace(/^Invalid input: /, "").toLowerCase();
  return `\`${field}\` must be ${want.replace(/^expected /, "")}, ${got}`;
}

/**
 * Validates a parsed adapter_config.json object (PEFT's keys). Unknown keys are kept in `extra`
 * (a warning names them); a wrong type is an error naming the field and the value.
 * @throws LowrankError CONFIG_INVALID
 */
export function parseLoraConfig(raw: unknown, options: { label?: string; logger?: Logger; floatPaths?: Iterable<string> } = {}): LoraConfig {
  const label = options.label ?? "adapter_config.json";
  const fail = (why: string): never => {
    throw new LowrankError("CONFIG_INVALID", `${label}: ${why}`);
  };
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) fail("expected a JSON object");
  const record = raw as Record<string, unknown>;
  if (record.peft_type === undefined) fail('`peft_type` is missing (PEFT requires it; a LoRA adapter has "LORA")');
  if (record.peft_type !== "LORA") {
    fail(`\`peft_type\` is ${describeValue(record.peft_type)}; lowrank reads LoRA adapters ("LORA") only`);
  }
  const modelled: Record<string, unknown> = {};
  const extra: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(record)) {
    if (key in loraConfigSchema.shape) modelled[key] = value === null && (key === "rank_pattern" || key === "alpha_pattern") ? {} : value;
    else extra[key] = value;
  }
  if (modelled.r === undefined) modelled.r = 8;
  if (modelled.lora_alpha === undefined) modelled.lora_alpha = 8;
  const result = loraConfigSchema.safeParse(modelled);
  if (!result.success) fail(issueMessage(result.error.issues[0]!, record)); // a failed parse has at least one issue
  const config = result.data!;
  if (typeof config.target_modules === "string" && config.layers_to_transform !== null) {
    fail("`layers_to_transform` cannot be used when `target_modules` is a regex string");
  }
  if (typeof config.target_modules === "string" && config.layers_pattern !== null) {
    fail("`layers_pattern` cannot be used when `target_modules` is a regex string");
  }
  if (config.lora_bias && config.use_dora) fail("`lora_bias` true is not supported with `use_dora`; PEFT refuses it");
  if (config.lora_bias && typeof config.init_lora_weights !== "boolean") {
    fail(`\`lora_bias\` true needs \`init_lora_weights\` true or false, got ${describeValue(config.init_lora_weights)}`);
  }
  if (config.layers_pattern !== null && config.layers_to_transform === null) {
    fail("`layers_pattern` is set but `layers_to_transform` is not; set both");
  }
  for (const [field, patterns] of [
    ["rank_pattern", config.rank_pattern],
    ["alpha_pattern", config.alpha_pattern],
  ] as const) {
    for (const key of Object.keys(patterns)) {
      try {
        new RegExp(key);
      } catch {
        fail(`\`${field}\` key ${describeValue(key)} is not a valid regular expression`);
      }
    }
  }
  // Regex strings: target/exclude_modules as a whole (re.fullmatch), layers_pattern inside PEFT's
  // `.*\.{pattern}\.(\d+)\.`. Checked here so that matching never meets a broken pattern.
  for (const field of ["target_modules", "exclude_modules", "layers_pattern"] as const) {
    const value = config[field];
    const patterns = typeof value === "string" ? [value] : field === "layers_pattern" && Array.isArray(value) ? value : [];
    for (const pattern of patterns) {
      try {
        new RegExp(pattern);
      } catch {
        fail(`\`${field}\` ${describeValue(pattern)} is not a valid regular expression`);
      }
    }
  }
  const unknown = Object.keys(extra).filter((k) => !KNOWN_PEFT_KEYS.has(k));
  if (unknown.length > 0) {
    options.logger?.warn(`${label}: keeping unknown keys from a newer PEFT version as they are: ${unknown.join(", ")}`);
  }
  return {
    ...config,
    extra,
    source: { keys: Object.keys(record), floatPaths: [...(options.floatPaths ?? [])] },
  };
}

/** Parses adapter_config.json text. @throws LowrankError CONFIG_INVALID (bad JSON or bad field). */
export function parseLoraConfigJson(text: string, options: { label?: string; logger?: Logger } = {}): LoraConfig {
  const label = options.label ?? "adapter_config.json";
  let parsed;
  try {
    parsed = parseJson(text);
  } catch (error) {
    throw new LowrankError("CONFIG_INVALID", `${label}: not valid JSON (${(error as Error).message})`);
  }
  return parseLoraConfig(parsed.value, { ...options, label, floatPaths: parsed.floatPaths });
}
