// A small line chart as SVG (no dependencies): the demo's loss curve.
export function lineChartSvg({ title, xLabel, yLabel, series, width = 640, height = 320 }) {
  const pad = { left: 56, right: 16, top: 32, bottom: 44 };
  const points = series.flatMap((s) => s.points);
  const xs = points.map((p) => p[0]);
  const ys = points.map((p) => p[1]);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  const sx = (x) => pad.left + ((x - x0) / Math.max(1e-9, x1 - x0)) * (width - pad.left - pad.right);
  const sy = (y) => height - pad.bottom - ((y - y0) / Math.max(1e-9, y1 - y0)) * (height - pad.top - pad.bottom);
  const colors = ["#2563eb", "#dc2626", "#16a34a"];
  const ticks = Array.from({ length: 5 }, (_, i) => y0 + ((y1 - y0) * i) / 4);
  const lines = series.map((s, i) => `<polyline fill="none" stroke="${colors[i % colors.length]}" stroke-width="2" points="${s.points.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(" ")}"/>`);
  const legend = series.map((s, i) => `<text x="${width - pad.right - 150}" y="${pad.top + 14 * i}" font-size="12" fill="${colors[i % colors.length]}">${s.name}</text>`);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${width / 2}" y="20" text-anchor="middle" font-size="14">${title}</text>`,
    `<line x1="${pad.left}" y1="${height - pad.bottom}" x2="${width - pad.right}" y2="${height - pad.bottom}" stroke="#444"/>`,
    `<line x1="${pad.left}" y1="${pad.top}" x2="${pad.left}" y2="${height - pad.bottom}" stroke="#444"/>`,
    ...ticks.map((t) => `<text x="${pad.left - 6}" y="${sy(t) + 4}" text-anchor="end" font-size="11">${t.toFixed(2)}</text><line x1="${pad.left}" x2="${width - pad.right}" y1="${sy(t)}" y2="${sy(t)}" stroke="#eee"/>`),
    `<text x="${pad.left}" y="${height - pad.bottom + 16}" font-size="11">${x0}</text>`,
    `<text x="${width - pad.right}" y="${height - pad.bottom + 16}" text-anchor="end" font-size="11">${x1}</text>`,
    `<text x="${width / 2}" y="${height - 8}" text-anchor="middle" font-size="12">${xLabel}</text>`,
    `<text x="14" y="${height / 2}" text-anchor="middle" font-size="12" transform="rotate(-90 14 ${height / 2})">${yLabel}</text>`,
    ...lines,
    ...legend,
    "</svg>",
  ].join("\n");
}
