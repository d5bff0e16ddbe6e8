import { relativePosition, type RelativePositionParams } from "@lowrank/core/internal";

/**
 * The table rows the two position terms gather for each distance d: content→position (c2p_pos,
 * d = query − key) clamp(pos(d) + span, 0, 2·span − 1), and position→content before its transpose
 * (p2c_pos, d = key − query) clamp(span − pos(d), 0, 2·span − 1). Listed for d = −limit … limit,
 * where limit is a distance beyond which every row is the clamped end, so any sequence length
 * looks its rows up after clamping d to ±limit.
 */
export function relativeRowTables(params: RelativePositionParams): { limit: number; c2p: number[]; p2c: number[] } {
  const top = 2 * params.span - 1;
  const clamp = (x: number) => Math.min(Math.max(x, 0), top);
  const c2pRow = (d: number) => clamp(relativePosition(d, params) + params.span);
  const p2cRow = (d: number) => clamp(params.span - relativePosition(d, params));
  let limit = 1;
  while (limit < 1 << 16 && !(c2pRow(limit) === top && c2pRow(-limit) === 0 && p2cRow(limit) === 0 && p2cRow(-limit) === top)) limit++;
  const distances = Array.from({ length: 2 * limit + 1 }, (_, i) => i - limit);
  return { limit, c2p: distances.map(c2pRow), p2c: distances.map(p2cRow) };
}
