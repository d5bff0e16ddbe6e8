// The SVG heatmaps of `lowrank analyze`, with no dependencies.

const escapeXml = (text: string): string => text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/**
 * Small heatmaps side by side, one per panel, values in [0, 1] from white to dark blue, each cell
 * labelled on hover. Rows and columns are 1-based in the labels.
 */
export function heatmapGridSvg(chart: {
  title: string;
  rowLabel: string;
  columnLabel: string;
  panels: { title: string; values: number[][] }[];
  cell?: number;
  columns?: number;
}): string {
  const cell = chart.cell ?? 14;
  const perRow = chart.columns ?? Math.min(4, chart.panels.length);
  const rows = Math.max(1, ...chart.panels.map((p) => p.values.length));
  const cols = Math.max(1, ...chart.panels.map((p) => p.values[0]?.length ?? 0));
  const panelW = Math.max(cols * cell, 120) + 24;
  const panelH = rows * cell + 40;
  const width = perRow * panelW + 20;
  const height = Math.ceil(chart.panels.length / perRow) * panelH + 56;
  const shade = (v: number): string => {
    const t = Math.min(1, Math.max(0, v));
    const c = (from: number, to: number): number => Math.round(from + (to - from) * t);
    return `rgb(${c(255, 30)},${c(255, 64)},${c(255, 175)})`;
  };
  const body: string[] = [];
  chart.panels.forEach((panel, p) => {
    const x0 = 16 + (p % perRow) * panelW;
    const y0 = 48 + Math.floor(p / perRow) * panelH;
    body.push(`<text x="${x0}" y="${y0 - 6}" font-size="10">${escapeXml(panel.title)}</text>`);
    panel.values.forEach((row, i) =>
      row.forEach((v, j) => {
        body.push(
          `<rect x="${x0 + j * cell}" y="${y0 + i * cell}" width="${cell}" height="${cell}" fill="${shade(v)}" stroke="#fff" ` +
            `stroke-width="0.5"><title>${escapeXml(`${chart.rowLabel} ${i + 1}, ${chart.columnLabel} ${j + 1}: ${v.toFixed(3)}`)}</title></rect>`,
        );
      }),
    );
  });
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${width / 2}" y="20" text-anchor="middle" font-size="14">${escapeXml(chart.title)}</text>`,
    `<text x="${width / 2}" y="36" text-anchor="middle" font-size="11">rows: ${escapeXml(chart.rowLabel)}, columns: ${escapeXml(chart.columnLabel)}; ` +
      `white 0 → blue 1</text>`,
    ...body,
    "</svg>",
    "",
  ].join("\n");
}
