import { analyzeAdapter, Checkpoint, readAdapter, subspaceSimilarity, type ModuleAnalysis } from "@lowrank/core";
import { summarizeModule, writeFileAtomic } from "@lowrank/core/internal";
import type { CliContext } from "../cli-context.js";
import { heatmapGridSvg } from "../report/heatmap-grid-svg.js";

export interface AnalyzeCommandOptions {
  against?: string;
  model?: string;
  json?: boolean;
  plot?: string;
}

const fmt = (x: number): string => (x === 0 ? "0" : x.toPrecision(4));

/** The JSON form of one module: the field names (singular_values, …). */
function moduleJson(m: ModuleAnalysis): Record<string, unknown> {
  return {
    name: m.name,
    kind: m.kind,
    r: m.r,
    in_features: m.inFeatures,
    out_features: m.outFeatures,
    scaling: m.scaling,
    dora: m.dora,
    singular_values: m.singularValues,
    effective_rank: Object.fromEntries(m.effectiveRanks.map((e) => [String(e.energy), e.rank])),
    delta_norm: m.deltaNorm,
    ...(m.relativeNorm === undefined ? {} : { relative_norm: m.relativeNorm }),
    summary: summarizeModule(m),
  };
}

/**
 * `lowrank analyze`: the LoRA paper's section 7 for one adapter — each module's singular values of
 * ΔW, effective rank, size against the base — and, with --against, the subspace similarity φ.
 */
export async function analyzeCommand(ctx: CliContext, adapterArg: string, options: AnalyzeCommandOptions): Promise<void> {
  const adapter = await readAdapter(await ctx.local(adapterArg), { logger: ctx.logger });
  const base = options.model ? await Checkpoint.open(await ctx.local(options.model)) : undefined;
  let modules: ModuleAnalysis[];
  try {
    modules = await analyzeAdapter(adapter, { base });
  } finally {
    await base?.close();
  }
  let similarity: { name: string; phi: number[][] }[] | undefined;
  if (options.against) {
    const other = await readAdapter(await ctx.local(options.against), { logger: ctx.logger });
    const otherNames = new Set((await analyzeAdapter(other)).map((m) => m.name));
    similarity = modules.filter((m) => otherNames.has(m.name)).map((m) => ({ name: m.name, phi: subspaceSimilarity(adapter, other, m.name) }));
  }
  if (options.plot) {
    const svg = similarity
      ? heatmapGridSvg({
          title: `Subspace similarity φ(i, j) of ${adapterArg} and ${options.against}`,
          rowLabel: `i (top directions of ${adapterArg})`,
          columnLabel: "j (of the other)",
          panels: similarity.map((s) => ({ title: s.name, values: s.phi })),
        })
      : heatmapGridSvg({
          title: `Singular values of ΔW relative to the largest: ${adapterArg}`,
          rowLabel: "module",
          columnLabel: "singular value",
          columns: 1,
          cell: 18,
          panels: [
            {
              title: "one row per module, in order",
              values: modules.map((m) => m.singularValues.map((s) => (m.singularValues[0] ? s / m.singularValues[0] : 0))),
            },
          ],
        });
    await writeFileAtomic(options.plot, svg);
  }
  if (options.json) {
    ctx.out(
      JSON.stringify(
        {
          adapter: adapterArg,
          modules: modules.map(moduleJson),
          ...(similarity ? { against: { adapter: options.against, modules: similarity } } : {}),
        },
        null,
        2,
      ),
    );
    return;
  }
  ctx.out(`${adapterArg}: ${modules.length} LoRA module(s)`);
  for (const m of modules) {
    ctx.out(`  ${m.name}  r=${m.r}  σ = ${m.singularValues.map(fmt).join(", ")}`);
    ctx.out(`    ${summarizeModule(m).slice(m.name.length + 2)}`);
  }
  if (similarity) {
    ctx.out(`subspace similarity with ${options.against} (φ(i, i) for i = 1, 2, …; 1 = same directions, 0 = orthogonal):`);
    for (const s of similarity)
      ctx.out(
        `  ${s.name}  ${s.phi
          .slice(0, Math.min(s.phi.length, s.phi[0]?.length ?? 0))
          .map((row, i) => fmt(row[i]!))
          .join(", ")}`,
      );
  }
  if (options.plot) ctx.out(`wrote ${options.plot}`);
}
