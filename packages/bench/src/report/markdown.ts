// Number and table formatting shared by the benchmark page's sections.
import type { Spread } from "../stats.js";

export const n = (x: number): string => x.toLocaleString("en-US");
export const mb = (bytes: number): string => (bytes >= 1e8 ? `${(bytes / 1e6).toFixed(0)} MB` : `${(bytes / 1e6).toFixed(2)} MB`);
/** A spread to 3 decimals: `median (min–max)`. */
export const s3 = (s: Spread): string => `${s.median.toFixed(3)} (${s.min.toFixed(3)}–${s.max.toFixed(3)})`;
/** A spread of milliseconds: 2 decimals under 10, else 1. */
export const ms = (s: Spread): string =>
  `${s.median.toFixed(s.median < 10 ? 2 : 1)} (${s.min.toFixed(s.min < 10 ? 2 : 1)}–${s.max.toFixed(s.max < 10 ? 2 : 1)})`;
export const table = (head: string[], rows: string[][]): string[] => [
  `| ${head.join(" | ")} |`,
  `|${head.map(() => "---").join("|")}|`,
  ...rows.map((r) => `| ${r.join(" | ")} |`),
];
