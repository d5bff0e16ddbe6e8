import type { ModuleAnalysis } from "./analyze-adapter.js";

const percent = (fraction: number, digits: number): string => `${Number((fraction * 100).toPrecision(digits))}%`;

/**
 * One plain-language line about a module's update, e.g. "transformer.h.0.attn.c_attn: 90% of the
 * update's energy lies in the top 2 of 8 directions, 99% in the top 5; its norm is 1.3% of the base
 * weight's."
 */
export function summarizeModule(m: ModuleAnalysis): string {
  if (m.deltaNorm === 0) return `${m.name}: the update is zero.`;
  const [first, ...rest] = m.effectiveRanks;
  let text = `${m.name}: `;
  if (first) {
    text += `${percent(first.energy, 6)} of the update's energy lies in the top ${first.rank} of ${m.r} direction${m.r === 1 ? "" : "s"}`;
    text += rest.map((e) => `, ${percent(e.energy, 6)} in the top ${e.rank}`).join("");
  } else {
    text += `rank ${m.r}, ‖ΔW‖_F = ${m.deltaNorm.toPrecision(3)}`;
  }
  if (m.relativeNorm !== undefined) text += `; its norm is ${percent(m.relativeNorm, 2)} of the base weight's`;
  return `${text}.`;
}
