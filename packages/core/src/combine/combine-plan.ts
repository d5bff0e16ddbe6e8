import type { LoraAdapter } from "../adapter/lora-adapter.js";
import type { LoraConfig } from "../config/lora-config.js";
import { LowrankError } from "../errors/lowrank-error.js";

export const COMBINATIONS = [
  "linear",
  "cat",
  "svd",
  "ties",
  "ties_svd",
  "dare_linear",
  "dare_ties",
  "dare_linear_svd",
  "dare_ties_svd",
  "magnitude_prune",
  "magnitude_prune_svd",
] as const;
export type CombinationType = (typeof COMBINATIONS)[number];

/** Combinations that merge lora_A and lora_B separately and so need adapters of one rank. */
const SAME_RANK: ReadonlySet<CombinationType> = new Set(["linear", "ties", "dare_ties", "dare_linear", "magnitude_prune"]);
const NEEDS_DENSITY: ReadonlySet<CombinationType> = new Set(COMBINATIONS.filter((c) => /ties|dare|magnitude/.test(c)));

export interface PlanInput {
  config: LoraConfig;
  label: string;
  /** Leaf names of the adapter's modules, used for target_modules "all-linear". */
  moduleLeaves: string[];
}

export interface CombinePlan {
  /** After PEFT's rule that a single adapter is always combined linearly. */
  combination: CombinationType;
  newRank: number;
  targetModules: string | string[];
  /** Each input's target_modules, with "all-linear" replaced by its adapted leaf names. */
  inputTargets: (string | string[])[];
}

/** Checks a combination name and its numeric options the way PEFT and torch would reject them. */
export function checkCombineOptions(o: {
  combination: string;
  svdRank?: number;
  svdClamp?: number;
  density?: number;
  majoritySignMethod?: string;
}): CombinationType {
  const combination = o.combination as CombinationType;
  if (!COMBINATIONS.includes(combination)) {
    throw new LowrankError("USAGE", `combineAdapters: unknown \`combination\` "${o.combination}"; expected one of ${COMBINATIONS.join(", ")}`);
  }
  if (o.density !== undefined && !(o.density > 0 && o.density <= 1)) {
    throw new LowrankError("USAGE", `combineAdapters: \`density\` is ${o.density}, expected the fraction in (0, 1] of values to keep`);
  }
  if (o.svdRank !== undefined && !(Number.isInteger(o.svdRank) && o.svdRank > 0)) {
    throw new LowrankError("USAGE", `combineAdapters: \`svdRank\` is ${o.svdRank}, expected a positive integer`);
  }
  if (o.svdClamp !== undefined && !(o.svdClamp >= 0 && o.svdClamp <= 1)) {
    throw new LowrankError("USAGE", `combineAdapters: \`svdClamp\` is ${o.svdClamp}, expected a quantile in [0, 1]`);
  }
  if (o.majoritySignMethod !== undefined && o.majoritySignMethod !== "total" && o.majoritySignMethod !== "frequency") {
    throw new LowrankError("USAGE", `combineAdapters: \`majoritySignMethod\` is "${o.majoritySignMethod}", expected "total" or "frequency"`);
  }
  return combination;
}

/** PEFT's rank of an adapter for combining: r, or the largest rank_pattern value when larger. */
export function adapterRank(config: LoraConfig): number {
  return Math.max(config.r, ...Object.values(config.rank_pattern));
}

function targetsOf(input: PlanInput): string | string[] {
  const t = input.config.target_modules;
  if (t === null) {
    throw new LowrankError(
      "CONFIG_INVALID",
      `combineAdapters: ${input.label} has \`target_modules\` null; PEFT fills it in from the model type, so set it explicitly`,
    );
  }
  // PEFT replaces "all-linear" by the set of adapted leaf names when it injects the adapter.
  if (typeof t === "string" && t.toLowerCase() === "all-linear") return [...new Set(input.moduleLeaves)];
  return t;
}

/**
 * PEFT's LoraModel._check_add_weighted_adapter: one adapter means "linear"; ties, dare_* and
 * magnitude_prune* need a density (PEFT fails on None); linear, ties, dare_* and
 * magnitude_prune need equal ranks (the new rank); cat sums the ranks; *svd takes svdRank or the
 * largest rank. target_modules must be all strings (joined as "(a)|(b)") or all lists (their union).
 * @throws LowrankError USAGE (ranks differ), CONFIG_INVALID (mixed or missing target_modules).
 */
export function planCombination(inputs: readonly PlanInput[], requested: CombinationType, options: { svdRank?: number; density?: number }): CombinePlan {
  const { svdRank, density } = options;
  const combination = inputs.length === 1 ? "linear" : requested;
  if (NEEDS_DENSITY.has(combination) && density === undefined) {
    throw new LowrankError("USAGE", `combineAdapters: "${combination}" needs \`density\`, the fraction in (0, 1] of values to keep`);
  }
  const ranks = inputs.map((i) => adapterRank(i.config));
  let newRank: number;
  if (SAME_RANK.has(combination)) {
    const other = ranks.findIndex((r) => r !== ranks[0]);
    if (other >= 0) {
      throw new LowrankError(
        "USAGE",
        `combineAdapters: "${combination}" needs adapters of one rank, but ${inputs[0]!.label} has r = ${ranks[0]} and ${inputs[other]!.label} has r ` +
          `= ${ranks[other]}; use "cat" or "svd"`,
      );
    }
    newRank = ranks[0]!;
  } else if (combination === "cat") {
    newRank = ranks.reduce((a, b) => a + b, 0);
  } else {
    newRank = svdRank ?? Math.max(...ranks);
  }
  const targets = inputs.map(targetsOf);
  const mixed = targets.findIndex((t) => typeof t !== typeof targets[0]);
  if (mixed >= 0) {
    throw new LowrankError(
      "CONFIG_INVALID",
      `combineAdapters: \`target_modules\` is a ${typeof targets[0] === "string" ? "regex string" : "list"} in ${inputs[0]!.label} but a ` +
        `${typeof targets[mixed] === "string" ? "regex string" : "list"} in ${inputs[mixed]!.label}; PEFT cannot combine a mix of the two`,
    );
  }
  const targetModules = typeof targets[0] === "string" ? targets.map((t) => `(${t})`).join("|") : [...new Set(targets.flat())];
  return { combination, newRank, targetModules, inputTargets: targets };
}

/**
 * The combined adapter's config, as PEFT builds it: the first adapter's config with r and lora_alpha
 * set to the new rank (scaling 1, since every combination folds the scalings into the factors), the
 * merged target_modules, rank/alpha patterns cleared, and use_rslora false (as in current PEFT,
 * huggingface/peft#3449; older releases kept the first adapter's use_rslora, which made the combined
 * scaling √r instead of 1, and PEFT 0.12 also kept its rank/alpha patterns). `modulePatterns` lists
 * modules whose combined rank differs from the new rank (inputs with a rank_pattern), each with
 * alpha = rank so that their scaling is 1 too and the file loads with the right shapes.
 */
export function combinedConfig(first: LoraAdapter, plan: CombinePlan, modulePatterns: ReadonlyMap<string, number>): LoraConfig {
  const { source: _source, ...config } = first.config;
  return {
    ...config,
    r: plan.newRank,
    lora_alpha: plan.newRank,
    target_modules: plan.targetModules,
    rank_pattern: Object.fromEntries(modulePatterns),
    alpha_pattern: Object.fromEntries(modulePatterns),
    use_rslora: false,
    extra: { ...config.extra },
  };
}
