import type { LoraConfig } from "../config/lora-config.js";

/** The verdict for one module name: targeted, excluded by exclude_modules, or not matched. */
export type TargetVerdict = "targeted" | "excluded" | "unmatched";

type MatchingFields = Pick<LoraConfig, "target_modules" | "exclude_modules" | "layers_to_transform" | "layers_pattern">;

const regexCache = new Map<string, RegExp>();

/** Python's re.fullmatch for the subset of syntax JavaScript shares with it. */
export function fullMatch(pattern: string, text: string): boolean {
  let re = regexCache.get(pattern);
  if (!re) {
    re = new RegExp(`^(?:${pattern})$`);
    regexCache.set(pattern, re);
  }
  return re.test(text);
}

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** A list entry matches a name exactly or as a suffix after a '.'. */
export function matchesNameList(names: readonly string[], key: string): boolean {
  return names.some((n) => key === n || key.endsWith(`.${n}`));
}

function layerIndexOf(key: string, layersPattern: string | string[] | null): number | undefined {
  // PEFT: re.match(r".*\.[^.]*\.(\d+)\.", key), or with the given pattern(s) in place of [^.]*.
  const patterns = layersPattern === null || layersPattern.length === 0 ? ["[^.]*"] : typeof layersPattern === "string" ? [layersPattern] : layersPattern;
  for (const pattern of patterns) {
    const m = new RegExp(`^.*\\.(?:${pattern})\\.(\\d+)\\.`).exec(key);
    if (m) return Number(m[1]);
  }
  return undefined;
}

/**
 * PEFT's `check_target_module_exists`, in PEFT's order: exclude_modules first (a regex string must
 * match the whole name; a list matches exactly or as a '.'-suffix), then target_modules the same
 * way, then layers_to_transform / layers_pattern by layer index (only for list targets).
 * `target_modules` must already be resolved (not null, not "all-linear").
 */
export function checkTargetModule(config: MatchingFields, key: string): TargetVerdict {
  const exclude = config.exclude_modules;
  if (exclude !== null && exclude.length > 0) {
    if (typeof exclude === "string" ? fullMatch(exclude, key) : matchesNameList(exclude, key)) return "excluded";
  }
  const targets = config.target_modules;
  if (targets === null) return "unmatched";
  if (typeof targets === "string") return fullMatch(targets, key) ? "targeted" : "unmatched";
  if (targets.includes(key)) return "targeted";
  if (!targets.some((t) => key.endsWith(`.${t}`))) return "unmatched";
  const layers = config.layers_to_transform;
  const usingLayers = layers !== null && (Array.isArray(layers) ? layers.length > 0 : true);
  if (!usingLayers) return "targeted";
  const index = layerIndexOf(key, config.layers_pattern);
  if (index === undefined) return "unmatched";
  return (typeof layers === "number" ? index === layers : layers!.includes(index)) ? "targeted" : "unmatched";
}

/**
 * PEFT 0.12's rank_pattern / alpha_pattern lookup key: the first key of rank_pattern, then of
 * alpha_pattern, that matches the end of the module name after a '.' (`re.match(".*\.{key}$")`);
 * when none does, the module's full name itself. The one key is then looked up in both patterns,
 * so a module takes r and alpha from the same pattern, or the config's global values.
 */
export function patternKeyFor(config: Pick<LoraConfig, "rank_pattern" | "alpha_pattern">, moduleName: string): string {
  const keys = [...Object.keys(config.rank_pattern), ...Object.keys(config.alpha_pattern)];
  return keys.find((key) => new RegExp(`^.*\\.(?:${key})$`).test(moduleName)) ?? moduleName;
}

export { escapeRegex };
