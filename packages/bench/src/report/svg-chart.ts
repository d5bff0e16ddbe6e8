// Small SVG charts with no dependencies: the demo's loss curve and the benchmark page's bars.
// (`lowrank analyze`'s heatmaps live in the CLI: packages/cli/src/report/heatmap-grid-svg.ts.)

const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2"];
const escapeXml = (text: string): string => text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

interface Frame {
  width: number;
  height: number;
  pad: { left: number; right: number; top: number; bottom: number };
}

function frame({ width, height, pad }: Frame, title: string, yLabel: string, body: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${width / 2}" y="20" text-anchor="middle" font-size="14">${escapeXml(title)}</text>`,
    `<line x1="${pad.left}" y1="${height - pad.bottom}" x2="${width - pad.right}" y2="${height - pad.bottom}" stroke="#444"/>`,
    `<line x1="${pad.left}" y1="${pad.top}" x2="${pad.left}" y2="${height - pad.bottom}" stroke="#444"/>`,
    `<text x="14" y="${height / 2}" text-anchor="middle" font-size="12" transform="rotate(-90 14 ${height / 2})">${escapeXml(yLabel)}</text>`,
    ...body,
    "</svg>",
    "",
  ].join("\n");
}

function yTicks(y0: number, y1: number, sy: (y: number) => number, f: Frame): string[] {
  const digits = y1 - y0 >= 10 ? 0 : 2;
  return Array.from({ length: 5 }, (_, i) => y0 + ((y1 - y0) * i) / 4).map(
    (t) =>
      `<text x="${f.pad.left - 6}" y="${sy(t) + 4}" text-anchor="end" font-size="11">${t.toFixed(digits)}</text><line x1="${f.pad.left}" ` +
      `x2="${f.width - f.pad.right}" y1="${sy(t)}" y2="${sy(t)}" stroke="#eee"/>`,
  );
}

/** A line chart: one polyline per series of [x, y] points. */
export function lineChartSvg(chart: {
  title: string;
  xLabel: string;
  yLabel: string;
  series: { name: string; points: [number, number][] }[];
  width?: number;
  height?: number;
}): string {
  const f: Frame = { width: chart.width ?? 640, height: chart.height ?? 320, pad: { left: 56, right: 16, top: 32, bottom: 44 } };
  const points = chart.series.flatMap((s) => s.points);
  const [x0, x1] = [Math.min(...points.map((p) => p[0])), Math.max(...points.map((p) => p[0]))];
  const [y0, y1] = [Math.min(...points.map((p) => p[1])), Math.max(...points.map((p) => p[1]))];
  const sx = (x: number): number => f.pad.left + ((x - x0) / Math.max(1e-9, x1 - x0)) * (f.width - f.pad.left - f.pad.right);
  const sy = (y: number): number => f.height - f.pad.bottom - ((y - y0) / Math.max(1e-9, y1 - y0)) * (f.height - f.pad.top - f.pad.bottom);
  return frame(f, chart.title, chart.yLabel, [
    ...yTicks(y0, y1, sy, f),
    `<text x="${f.pad.left}" y="${f.height - f.pad.bottom + 16}" font-size="11">${x0}</text>`,
    `<text x="${f.width - f.pad.right}" y="${f.height - f.pad.bottom + 16}" text-anchor="end" font-size="11">${x1}</text>`,
    `<text x="${f.width / 2}" y="${f.height - 8}" text-anchor="middle" font-size="12">${escapeXml(chart.xLabel)}</text>`,
    ...chart.series.map(
      (s, i) =>
        `<polyline fill="none" stroke="${COLORS[i % COLORS.length]}" stroke-width="2" ` +
        `points="${s.points.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(" ")}"/>`,
    ),
    ...chart.series.map(
      (s, i) =>
        `<text x="${f.width - f.pad.right - 150}" y="${f.pad.top + 14 * i}" font-size="12" fill="${COLORS[i % COLORS.length]}">${escapeXml(s.name)}</text>`,
    ),
  ]);
}

/**
 * A grouped bar chart: one group per category, one bar per series; optional [min, max] whiskers show
 * the spread of each median.
 */
export function barChartSvg(chart: {
  title: string;
  yLabel: string;
  categories: string[];
  series: { name: string; values: number[]; ranges?: [number, number][] }[];
  width?: number;
  height?: number;
}): string {
  const f: Frame = { width: chart.width ?? 640, height: chart.height ?? 320, pad: { left: 64, right: 16, top: 48, bottom: 48 } };
  const top = Math.max(...chart.series.flatMap((s) => [...s.values, ...(s.ranges ?? []).map((r) => r[1])])) * 1.08 || 1;
  const sy = (y: number): number => f.height - f.pad.bottom - (y / top) * (f.height - f.pad.top - f.pad.bottom);
  const groupWidth = (f.width - f.pad.left - f.pad.right) / chart.categories.length;
  const barWidth = (groupWidth * 0.8) / chart.series.length;
  const body = [...yTicks(0, top, sy, f)];
  chart.categories.forEach((category, c) => {
    const gx = f.pad.left + c * groupWidth + groupWidth * 0.1;
    body.push(`<text x="${gx + groupWidth * 0.4}" y="${f.height - f.pad.bottom + 16}" text-anchor="middle" font-size="11">${escapeXml(category)}</text>`);
    chart.series.forEach((s, i) => {
      const x = gx + i * barWidth;
      const v = s.values[c]!;
      body.push(
        `<rect x="${x.toFixed(1)}" y="${sy(v).toFixed(1)}" width="${(barWidth - 2).toFixed(1)}" height="${(sy(0) - sy(v)).toFixed(1)}" ` +
          `fill="${COLORS[i % COLORS.length]}"><title>${escapeXml(`${s.name}: ${v}`)}</title></rect>`,
      );
      const range = s.ranges?.[c];
      if (range) {
        const mid = x + (barWidth - 2) / 2;
        body.push(`<line x1="${mid.toFixed(1)}" x2="${mid.toFixed(1)}" y1="${sy(range[0]).toFixed(1)}" y2="${sy(range[1]).toFixed(1)}" stroke="#111"/>`);
      }
    });
  });
  chart.series.forEach((s, i) =>
    body.push(
      `<rect x="${f.pad.left + 8 + i * 150}" y="30" width="10" height="10" fill="${COLORS[i % COLORS.length]}"/><text ` +
        `x="${f.pad.left + 22 + i * 150}" y="39" font-size="12">${escapeXml(s.name)}</text>`,
    ),
  );
  return frame(f, chart.title, chart.yLabel, body);
}
