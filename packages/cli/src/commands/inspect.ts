import { Checkpoint, describeModel, loraScaling, moduleHyperparameters, parseAdapterKey, readAdapter, resolveTargets, elementCount, type LoraAdapter } from "@lowrank/core";
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

/** Everything `inspect` reports about an adapter, derived from its files (and the base when given). */
export function summarizeAdapter(adapter: LoraAdapter): { modules: ModuleRow[]; fullTensors: string[]; trainableParameters: number } {
  const { config } = adapter;
  const rows = new Map<string, ModuleRow>();
  const fullTensors: string[] = [];
  let trainableParameters = 0;
  for (const [key, tensor] of adapter.tensors) {
    const n = elementCount(tensor.shape);
    trainableParameters += n;
    const parsed = parseAdapterKey(key);
    if (!parsed || parsed.role === "replacement") {
      fullTensors.push(parsed && parsed.role === "replacement" ? parsed.baseKey : key);
      continue;
    }
    let row = rows.get(parsed.module);
    if (!row) {
      const { r, alpha, scaling } = moduleHyperparameters(config, parsed.module);
      row = {
        name: parsed.module, kind: "lora", r, alpha, scaling,
        inFeatures: 0, outFeatures: 0, dora: false, loraBias: false, parameters: 0,
      };
      rows.set(parsed.module, row);
    }
    row.parameters += n;
    if (parsed.role === "lora_A" || parsed.role === "lora_embedding_A") {
      row.r = tensor.shape[0];
      row.inFeatures = tensor.shape[1];
      row.scaling = loraScaling({ alpha: row.alpha, r: row.r, useRslora: config.use_rslora });
    }
    if (parsed.role === "lora_B" || parsed.role === "lora_embedding_B") row.outFeatures = tensor.shape[0];
    if (parsed.role === "lora_embedding_A" || parsed.role === "lora_embedding_B") row.kind = "embedding";
    if (parsed.role === "magnitude") row.dora = true;
    if (parsed.role === "lora_B_bias") row.loraBias = true;
  }
  return { modules: [...rows.values()], fullTensors, trainableParameters };
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
    ctx.out(JSON.stringify({
      adapter: adapterDir,
      config: { ...fields, ...extra },
      modules: summary.modules,
      modules_to_save: summary.fullTensors,
      trainable_parameters: summary.trainableParameters,
      ...(base ? { base_parameters: base.totalParameters, trainable_fraction: summary.trainableParameters / base.totalParameters } : {}),
    }, null, 2));
    return;
  }
  const lines = [
    `adapter: ${adapterDir}`,
    `type: ${config.peft_type}${config.use_dora ? " (DoRA)" : ""}${config.use_rslora ? " (rsLoRA)" : ""}   task: ${config.task_type ?? "-"}   base: ${config.base_model_name_or_path ?? "-"}`,
    `r: ${config.r}   lora_alpha: ${fmt(config.lora_alpha)}   dropout: ${config.lora_dropout}   bias: ${config.bias}   fan_in_fan_out: ${config.fan_in_fan_out}`,
    `target_modules: ${JSON.stringify(config.target_modules)}${config.modules_to_save ? `   modules_to_save: ${JSON.stringify([...new Set(config.modules_to_save)])}` : ""}`,
    ...(Object.keys(config.rank_pattern).length ? [`rank_pattern: ${JSON.stringify(config.rank_pattern)}`] : []),
    ...(Object.keys(config.alpha_pattern).length ? [`alpha_pattern: ${JSON.stringify(config.alpha_pattern)}`] : []),
    "",
    `modules (${summary.modules.length}):`,
    ...summary.modules.map((m) => `  ${m.name}  ${m.kind}${m.dora ? "+dora" : ""}  r=${m.r}  alpha=${fmt(m.alpha)}  scaling=${fmt(m.scaling)}  ${m.inFeatures}→${m.outFeatures}  params=${m.parameters}`),
    ...(summary.fullTensors.length ? ["", `full tensors (modules_to_save, biases): ${summary.fullTensors.join(", ")}`] : []),
    "",
    `trainable parameters: ${summary.trainableParameters.toLocaleString("en-US")}` +
      (base ? ` of ${base.totalParameters.toLocaleString("en-US")} in the base (${((100 * summary.trainableParameters) / base.totalParameters).toFixed(4)}%)` : ""),
  ];
  ctx.out(lines.join("\n"));
}
