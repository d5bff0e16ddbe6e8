import { adapterKey } from "../adapter/adapter-keys.js";
import type { LoraAdapter } from "../adapter/lora-adapter.js";
import { collectLoraModules, type AdapterModules } from "../adapter/lora-modules.js";
import { LowrankError } from "../errors/lowrank-error.js";
import { fromFloat32, type DType, type Tensor } from "../formats/safetensors/dtype.js";
import type { Logger } from "../logger.js";
import { SeededRandom } from "../math/random.js";
import { checkTargetModule } from "../targeting/check-target-module.js";
import { checkCombineOptions, combinedConfig, planCombination, type CombinationType } from "./combine-plan.js";
import { combineModule, type Contribution } from "./combine-module.js";
import type { MajoritySignMethod } from "./merge-utils.js";

/** One adapter to combine and its weight (negative weights subtract). */
export interface WeightedAdapter {
  adapter: LoraAdapter;
  weight: number;
  /** Used in messages; default "adapter 1", "adapter 2", … */
  name?: string;
}

export interface CombineOptions {
  combination: CombinationType;
  /** Rank of the *svd combinations; default the largest input rank. */
  svdRank?: number;
  /** Quantile in [0, 1] at which the SVD factors are clamped (PEFT's svd_clamp); default none. */
  svdClamp?: number;
  /** Fraction in (0, 1] of values kept by ties, dare_* and magnitude_prune (required for them). */
  density?: number;
  /** How ties and dare_ties elect the sign: by total mass (default) or by count. */
  majoritySignMethod?: MajoritySignMethod;
  /** Seed of DARE's random pruning (default 0). PEFT uses torch's global RNG, whose draws are not reproduced. */
  seed?: number;
  logger?: Logger;
}

const FLOAT_TYPES: ReadonlySet<DType> = new Set<DType>(["F32", "F16", "BF16", "F64"]);

function refuseUnsupported(inputs: readonly WeightedAdapter[], collected: readonly AdapterModules[], labels: readonly string[]): void {
  inputs.forEach(({ adapter, weight }, i) => {
    const label = labels[i];
    if (!Number.isFinite(weight)) throw new LowrankError("USAGE", `combineAdapters: the weight of ${label} is ${weight}, expected a finite number`);
    const modules = [...collected[i]!.modules.values()];
    if (adapter.config.use_dora || modules.some((m) => m.magnitude)) {
      throw new LowrankError(
        "ADAPTER_INVALID",
        `combineAdapters: ${label} is a DoRA adapter (\`use_dora\`); PEFT's combination would start its magnitude vector from the base weights, so it ` +
          `is not supported`,
      );
    }
    if (adapter.config.lora_bias || modules.some((m) => m.loraBias !== undefined)) {
      throw new LowrankError("ADAPTER_INVALID", `combineAdapters: ${label} trains lora_B.bias (\`lora_bias\`), which PEFT's combination does not carry over`);
    }
    if (adapter.config.bias !== "none") {
      throw new LowrankError(
        "ADAPTER_INVALID",
        `combineAdapters: ${label} has \`bias\` "${adapter.config.bias}"; its trained biases belong to the base model and cannot be combined`,
      );
    }
  });
  // PEFT refuses when two of the adapters keep their own copy (modules_to_save) of one module.
  const owner = new Map<string, number>();
  collected.forEach(({ replacements }, i) => {
    for (const key of new Set([...replacements.keys()].map((k) => k.slice(0, k.lastIndexOf("."))))) {
      const other = owner.get(key);
      if (other !== undefined && other !== i) {
        throw new LowrankError(
          "CONFIG_INVALID",
          `combineAdapters: ${labels[other]} and ${labels[i]} both save their own "${key}" (\`modules_to_save\`); PEFT cannot combine adapters that ` +
            `target the same module with modules_to_save`,
        );
      }
      owner.set(key, i);
    }
  });
}

/**
 * Combines LoRA adapters trained on one base model into a new adapter, as PEFT's
 * `LoraModel.add_weighted_adapter` does (combination_type, svd_rank, svd_clamp, density and
 * majority_sign_method map to the options of the same name).
 *
 * - cat: ranks add up; B·A = Σ wᵢ·sᵢ·Bᵢ·Aᵢ exactly (sᵢ is adapter i's scaling for the module).
 * - linear, ties, dare_linear, dare_ties, magnitude_prune: equal ranks; lora_A and lora_B are
 *   merged separately with weights ±√|wᵢsᵢ| and √|wᵢsᵢ| (PEFT's formula, cross terms included).
 * - svd, ties_svd, dare_linear_svd, dare_ties_svd, magnitude_prune_svd: the deltas sᵢ·Bᵢ·Aᵢ are
 *   merged with weights wᵢ·sᵢ (so "svd" is Σ wᵢ·sᵢ²·Bᵢ·Aᵢ, as in PEFT), then truncated to
 *   `svdRank` by SVD: lora_B = U·S, lora_A = Vᵀ, optionally clamped.
 * A single adapter is always combined linearly (PEFT). The new config is the first adapter's with
 * r = lora_alpha = new rank (scaling 1) and the union of target_modules. Modules that only some
 * adapters adapt are combined from those. modules_to_save copies are not carried over: PEFT gives
 * the combined adapter a fresh copy of the base module, which loading the result reproduces.
 * DARE's random masks come from `seed`, not torch's RNG.
 * @throws LowrankError USAGE (bad options or weights, unequal ranks), CONFIG_INVALID (mixed
 *   target_modules types, clashing modules_to_save), ADAPTER_INVALID (DoRA, lora_bias, trained biases),
 *   SHAPE_MISMATCH (adapters that disagree on a module).
 * @example
 * const merged = combineAdapters([{ adapter: a, weight: 0.7 }, { adapter: b, weight: 0.3 }], { combination: "cat" });
 * await writeAdapter("out/merged", merged);
 */
export function combineAdapters(inputs: readonly WeightedAdapter[], options: CombineOptions): LoraAdapter {
  if (inputs.length === 0) throw new LowrankError("USAGE", "combineAdapters: no adapters given");
  const requested = checkCombineOptions(options);
  const labels = inputs.map((x, i) => x.name ?? `adapter ${i + 1}`);
  const collected = inputs.map((x, i) => collectLoraModules(x.adapter, labels[i]));
  refuseUnsupported(inputs, collected, labels);
  const plan = planCombination(
    inputs.map((x, i) => ({
      config: x.adapter.config,
      label: labels[i]!,
      moduleLeaves: [...collected[i]!.modules.keys()].map((n) => n.slice(n.lastIndexOf(".") + 1)),
    })),
    requested,
    options,
  );
  const bases = new Set(inputs.map((x) => x.adapter.config.base_model_name_or_path).filter((b) => b !== null));
  const warn = (message: string): void => options.logger?.warn(`combineAdapters: ${message}`);
  if (bases.size > 1) warn(`the adapters name different base models (${[...bases].join(", ")}); combining needs one base`);
  const parts = new Map<string, Contribution[]>();
  collected.forEach(({ modules, replacements }, i) => {
    const config = { ...inputs[i]!.adapter.config, target_modules: plan.inputTargets[i]! };
    for (const m of modules.values()) {
      if (checkTargetModule(config, m.name) !== "targeted") {
        warn(`${labels[i]} has weights for "${m.name}" but its \`target_modules\` do not select it; ignored, as PEFT does`);
        continue;
      }
      parts.set(m.name, [...(parts.get(m.name) ?? []), { module: m, weight: inputs[i]!.weight, label: labels[i]! }]);
    }
    if (replacements.size > 0) warn(`${labels[i]}'s modules_to_save tensors are not carried over; like PEFT, the combined adapter starts from the base module`);
  });
  const patterns = new Map<string, number>();
  const config = combinedConfig(inputs[0]!.adapter, plan, patterns);
  const tensors = new Map<string, Tensor>();
  const params = {
    combination: plan.combination,
    newRank: plan.newRank,
    svdClamp: options.svdClamp,
    density: options.density ?? 1,
    majoritySignMethod: options.majoritySignMethod ?? "total",
    rng: new SeededRandom(options.seed ?? 0),
  };
  for (const [name, contributions] of parts) {
    if (checkTargetModule(config, name) !== "targeted") {
      warn(`module "${name}" is not selected by the combined config (the first adapter's layers_to_transform or exclude_modules); dropped, as PEFT does`);
      continue;
    }
    const { A, B, rank } = combineModule(name, contributions, params);
    const m = contributions[0]!.module;
    const dtype = FLOAT_TYPES.has(m.dtype) ? m.dtype : "F32";
    const tensor = (values: Float64Array, shape: number[]): Tensor => ({ dtype, shape, data: fromFloat32(Float32Array.from(values), dtype) });
    tensors.set(adapterKey(name, m.embedding ? "lora_embedding_A" : "lora_A"), tensor(A, [rank, m.inFeatures]));
    tensors.set(adapterKey(name, m.embedding ? "lora_embedding_B" : "lora_B"), tensor(B, [m.outFeatures, rank]));
    if (rank !== plan.newRank) patterns.set(name, rank);
  }
  if (tensors.size === 0) throw new LowrankError("ADAPTER_INVALID", "combineAdapters: no LoRA module is left to combine");
  return { config: combinedConfig(inputs[0]!.adapter, plan, patterns), tensors };
}
