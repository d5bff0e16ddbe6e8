import type { LoraConfig } from "../config/lora-config.js";
import { LowrankError } from "../errors/lowrank-error.js";
import type { Logger } from "../logger.js";
import { loraScaling } from "../math/scaling.js";
import type { ModelDescription, ModuleInfo } from "../model/model-description.js";
import { checkTargetModule, patternKeyFor } from "./check-target-module.js";
import { DEFAULT_TARGET_MODULES } from "./default-target-modules.js";

/** A module that gets LoRA factors, with its own rank, alpha and scaling. */
export interface LoraModulePlan {
  name: string;
  kind: "linear" | "conv1d" | "embedding";
  inFeatures: number;
  outFeatures: number;
  r: number;
  alpha: number;
  scaling: number;
  /** True when the base weight is stored input by output (Conv1D); decided by the layer, as PEFT does. */
  fanInFanOut: boolean;
  useDora: boolean;
  module: ModuleInfo;
}

/** Which modules an adapter touches, and why the others are left alone. */
export interface TargetReport {
  /** The target_modules actually applied (defaults and "all-linear" expanded). */
  targetModules: string[] | string;
  targets: LoraModulePlan[];
  /** Modules that matched target_modules but were removed by exclude_modules. */
  excluded: string[];
  /** Modules that are trained and saved whole (modules_to_save). */
  modulesToSave: string[];
}

const ALL_LINEAR = "all-linear";
const SEQ_CLS_HEAD_NAMES = ["score", "classifier"];
const SUPPORTED = new Set(["linear", "conv1d", "embedding"]);

/** A module's r, alpha and scaling: rank/alpha patterns (PEFT 0.12's lookup), then α/r or α/√r. */
export function moduleHyperparameters(
  config: Pick<LoraConfig, "r" | "lora_alpha" | "rank_pattern" | "alpha_pattern" | "use_rslora">,
  name: string,
): { r: number; alpha: number; scaling: number } {
  const key = patternKeyFor(config, name);
  const r = Object.hasOwn(config.rank_pattern, key) ? config.rank_pattern[key]! : config.r;
  const alpha = Object.hasOwn(config.alpha_pattern, key) ? config.alpha_pattern[key]! : config.lora_alpha;
  return { r, alpha, scaling: loraScaling({ alpha, r, useRslora: config.use_rslora }) };
}

/** Expands target_modules: PEFT's per-architecture defaults when null, every linear layer for "all-linear". */
export function expandTargetModules(config: LoraConfig, model: ModelDescription): string[] | string {
  const targets = config.target_modules;
  if (targets === null) {
    const defaults = model.modelType === undefined ? undefined : DEFAULT_TARGET_MODULES[model.modelType];
    if (!defaults) {
      throw new LowrankError(
        "CONFIG_INVALID",
        `\`target_modules\` is not set and there is no default for model type ${JSON.stringify(model.modelType ?? "unknown")}; list the modules to adapt`,
      );
    }
    return [...defaults];
  }
  if (typeof targets === "string" && targets.toLowerCase() === ALL_LINEAR) {
    const names = new Set<string>();
    for (const m of model.modules) {
      if (m.kind === "linear" || m.kind === "conv1d") names.add(m.name.slice(m.name.lastIndexOf(".") + 1));
    }
    if (model.outputHead !== undefined) names.delete(model.outputHead);
    else if (config.task_type === "SEQ_CLS") {
      const head = SEQ_CLS_HEAD_NAMES.find((n) => model.byName.has(n));
      if (head) names.delete(head);
    }
    return [...names].sort();
  }
  return targets;
}

function sampleNames(model: ModelDescription): string {
  const leaves = model.modules.filter((m) => SUPPORTED.has(m.kind)).map((m) => m.name);
  const shown = leaves.slice(0, 8).join(", ");
  return leaves.length > 8 ? `${shown}, … (${leaves.length} in all)` : shown;
}

/**
 * Decides, with PEFT's rules and in PEFT's order, which modules of `model` an adapter with `config`
 * adapts, and each one's r, alpha and scaling. Modules inside a modules_to_save module are never
 * targeted. Mirrors PEFT's BaseTuner.inject_adapter + LoraModel._create_and_replace.
 * `layoutFromStorage`: the description's layouts come from how weights are stored (an ONNX graph),
 * not from the layer type, so fan_in_fan_out is not compared with them. `training`: the report is
 * for a trainer, which refuses a tied module (GPT-2's lm_head) in modules_to_save.
 * @throws LowrankError TARGET_NOT_FOUND when nothing matched (or all was excluded),
 *   TARGET_UNSUPPORTED when a match is not a linear, Conv1D or embedding layer (or, training, a
 *   modules_to_save module tied to another).
 */
export function resolveTargets(
  config: LoraConfig,
  model: ModelDescription,
  options: { logger?: Logger; layoutFromStorage?: boolean; training?: boolean } = {},
): TargetReport {
  const targetModules = expandTargetModules(config, model);
  const effective = { ...config, target_modules: targetModules };
  const saveNames = config.modules_to_save ?? [];
  const modulesToSave: string[] = [];
  const targets: LoraModulePlan[] = [];
  const excluded: string[] = [];
  let fanInFanOutWarned = false;

  for (const module of model.modules) {
    const insideSaved = modulesToSave.some((s) => module.name.startsWith(`${s}.`));
    if (insideSaved) continue;
    if (saveNames.some((s) => module.name.endsWith(s))) {
      // PEFT would train an untied copy of a tied head; lowrank's trainers would train nothing.
      if (options.training && module.tiedTo !== undefined)
        throw new LowrankError(
          "TARGET_UNSUPPORTED",
          `modules_to_save \`${module.name}\`: it is tied to \`${module.tiedTo}\` (the checkpoint has no weight of its own) and training an untied copy is not supported; ` +
            `adapt it with LoRA (target_modules \`${module.name}\`) or save \`${module.tiedTo}\` (trains the shared table)`,
        );
      modulesToSave.push(module.name);
      continue;
    }
    const verdict = checkTargetModule(effective, module.name);
    if (verdict === "excluded") {
      excluded.push(module.name);
      continue;
    }
    if (verdict !== "targeted") continue;
    if (!SUPPORTED.has(module.kind)) {
      throw new LowrankError(
        "TARGET_UNSUPPORTED",
        `\`target_modules\` matched "${module.name}", which is ${module.kind === "container" ? "a container module" : `a ${module.kind} layer`}; LoRA ` +
          `adapts only linear, Conv1D and embedding layers — name the layers inside it`,
      );
    }
    const { r, alpha, scaling } = moduleHyperparameters(config, module.name);
    const fanInFanOut = module.kind === "conv1d";
    if (module.kind !== "embedding" && fanInFanOut !== config.fan_in_fan_out && !fanInFanOutWarned && !options.layoutFromStorage) {
      options.logger?.warn(
        `\`fan_in_fan_out\` is ${config.fan_in_fan_out} but "${module.name}" is a ${module.kind === "conv1d" ? "Conv1D" : "Linear"} layer; using ` +
          `${fanInFanOut} for it, as PEFT does`,
      );
      fanInFanOutWarned = true;
    }
    if (config.use_dora && module.kind === "embedding") {
      throw new LowrankError("TARGET_UNSUPPORTED", `\`use_dora\` is true but "${module.name}" is an embedding; PEFT does not support DoRA on embeddings`);
    }
    targets.push({
      name: module.name,
      kind: module.kind as LoraModulePlan["kind"],
      inFeatures: module.inFeatures!,
      outFeatures: module.outFeatures!,
      r,
      alpha,
      scaling,
      fanInFanOut,
      useDora: config.use_dora,
      module,
    });
  }

  if (targets.length === 0) {
    const what = typeof targetModules === "string" ? JSON.stringify(targetModules) : `[${targetModules.map((t) => JSON.stringify(t)).join(", ")}]`;
    if (excluded.length > 0) {
      throw new LowrankError(
        "TARGET_NOT_FOUND",
        `every module matched by \`target_modules\` ${what} was removed by \`exclude_modules\` (${excluded.slice(0, 4).join(", ")}); check both`,
      );
    }
    throw new LowrankError("TARGET_NOT_FOUND", `\`target_modules\` ${what} matched no module of the base model; some module names: ${sampleNames(model)}`);
  }
  const excludeList = config.exclude_modules;
  if (excludeList !== null && excludeList.length > 0 && excluded.length === 0) {
    options.logger?.warn(`\`exclude_modules\` ${JSON.stringify(excludeList)} excluded no module`);
  }
  return { targetModules, targets, excluded, modulesToSave };
}
