import { Checkpoint, collectLoraModules, describeModel, readAdapter, resolveTargets, type LoraAdapter } from "@lowrank/core";
import { elementCount } from "@lowrank/core/internal";
import type { CliContext } from "../cli-context.js";

interface ModuleRow {
  name: string;
  kind: "lora" | "embedding";
  r: number;
  alpha: number;
  scaling: number;
  inFeatures: number;
  outFeatures: number;
  dora: boolean;
  loraBias: boolean;
  parameters: number;
}

/**
 * Everything `inspect` reports about an adapter, derived from its files by core (collectLoraModules:
 * the same grouping, checks and scalings every other path uses).
 */
export function summarizeAdapter(adapter: LoraAdapter): { modules: ModuleRow[]; fullTensors: string[]; trainableParameters: number } {
  const { modules, replacements } = collectLoraModules(adapter);
  const rows = [...modules.values()].map(
    (m): ModuleRow => ({
      name: m.name,
      kind: m.embedding ? "embedding" : "lora",
      r: m.r,
      alpha: m.alpha,
      scaling: m.scaling,
      inFeatures: m.inFeatures,
      outFeatures: m.outFeatures,
      dora: m.magnitude !== undefined,
      loraBias: m.loraBias !== undefined,
      parameters: m.parameters,
    }),
  );
  let trainableParameters = 0;
  for (const tensor of adapter.tensors.values()) trainableParameters += elementCount(tensor.shape);
  return { modules: rows, fullTensors: [...replacements.keys()], trainableParameters };
}

const fmt = (x: number): string => (Number.isInteger(x) ? String(x) : x.toPrecision(6).replace(/0+$/, ""));

export async function inspectCommand(ctx: CliContext, adapterDir: string, options: { json?: boolean; model?: string }): Promise<void> {
  const adapter = await readAdapter(await ctx.local(adapterDir), { logger: ctx.logger });
  const summary = summarizeAdapter(adapter);
  let base: { totalParameters: number; targeted: string[] } | undefined;
  if (options.model) {
    const checkpoint = await Checkpoint.open(await ctx.local(options.model));
    try {
      const model = describeModel(checkpoint.config, checkpoint.tensorInfo());
      const report = resolveTargets(adapter.config, model, { logger: ctx.logger });
      let total = 0;
      for (const info of model.tensors.values()) total += elementCount(info.shape);
      base = { totalParameters: total, targeted: report.targets.map((t) => t.name) };
    } finally {
      await checkpoint.close();
    }
  }
  const { config } = adapter;
  if (options.json) {
    const { extra, source, ...fields } = config;
    void source;
    ctx.out(
      JSON.stringify(
        {
          adapter: adapterDir,
          config: { ...fields, ...extra },
          modules: summary.modules,
          modules_to_save: summary.fullTensors,
          trainable_parameters: summary.trainableParameters,
          ...(base ? { base_parameters: base.totalParameters, trainable_fraction: summary.trainableParameters / base.totalParameters } : {}),
        },
        null,
        2,
      ),
    );
    return;
  }
  const lines = [
    `adapter: ${adapterDir}`,
    `type: ${config.peft_type}${config.use_dora ? " (DoRA)" : ""}${config.use_rslora ? " (rsLoRA)" : ""}   task: ${config.task_type ?? "-"}   base: ` +
      `${config.base_model_name_or_path ?? "-"}`,
    `r: ${config.r}   lora_alpha: ${fmt(config.lora_alpha)}   dropout: ${config.lora_dropout}   bias: ${config.bias}   fan_in_fan_out: ` +
      `${config.fan_in_fan_out}`,
    `target_modules: ` +
      `${JSON.stringify(config.target_modules)}${config.modules_to_save ? `   modules_to_save: ${JSON.stringify([...new Set(config.modules_to_save)])}` : ""}`,
    ...(Object.keys(config.rank_pattern).length ? [`rank_pattern: ${JSON.stringify(config.rank_pattern)}`] : []),
    ...(Object.keys(config.alpha_pattern).length ? [`alpha_pattern: ${JSON.stringify(config.alpha_pattern)}`] : []),
    "",
    `modules (${summary.modules.length}):`,
    ...summary.modules.map(
      (m) =>
        `  ${m.name}  ${m.kind}${m.dora ? "+dora" : ""}  r=${m.r}  alpha=${fmt(m.alpha)}  scaling=${fmt(m.scaling)}  ` +
        `${m.inFeatures}→${m.outFeatures}  params=${m.parameters}`,
    ),
    ...(summary.fullTensors.length ? ["", `full tensors (modules_to_save, biases): ${summary.fullTensors.join(", ")}`] : []),
    "",
    `trainable parameters: ${summary.trainableParameters.toLocaleString("en-US")}` +
      (base
        ? ` of ${base.totalParameters.toLocaleString("en-US")} in the base (${((100 * summary.trainableParameters) / base.totalParameters).toFixed(4)}%)`
        : ""),
  ];
  ctx.out(lines.join("\n"));
}
