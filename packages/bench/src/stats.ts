/** A timing summary: the median of the measured repeats, with the spread (min–max) beside it. */
export interface Spread {
  median: number;
  min: number;
  max: number;
  n: number;
}

export function spread(values: readonly number[]): Spread {
  if (values.length === 0) throw new Error("spread of no values");
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]!, n: sorted.length };
}

/**
 * Times variants interleaved (one call of each per round, after `warmup` rounds), so drift and
 * background load hit them alike; the order rotates each round, so no variant always runs right
 * after the same other one (whose threads may still be spinning). Returns milliseconds per variant.
 */
export async function timeInterleaved(variants: Record<string, () => unknown>, rounds: number, warmup: number): Promise<Record<string, Spread>> {
  const names = Object.keys(variants);
  const times: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  for (let round = 0; round < warmup + rounds; round++) {
    for (let k = 0; k < names.length; k++) {
      const name = names[(round + k) % names.length]!;
      const start = performance.now();
      await variants[name]!();
      if (round >= warmup) times[name]!.push(performance.now() - start);
    }
  }
  return Object.fromEntries(names.map((n) => [n, spread(times[n]!)]));
}

/**
 * Times variants that share one model whose state must be switched (tfjs: base, merged, unmerged):
 * each visit prepares a variant (untimed), runs it `warmup` times untimed — a switched weight is
 * re-packed by the kernel library on first use — then `runs` times timed. Visits cycle through the
 * variants `visits` times, so drift still hits them alike. Returns milliseconds per variant.
 */
export async function timeInBlocks(
  variants: Record<string, { prepare: () => unknown; run: () => unknown }>,
  visits: number,
  runs: number,
  warmup: number,
): Promise<Record<string, Spread>> {
  const names = Object.keys(variants);
  const times: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  for (let visit = 0; visit < visits; visit++) {
    for (const name of names) {
      const variant = variants[name]!;
      await variant.prepare();
      for (let i = 0; i < warmup; i++) await variant.run();
      for (let i = 0; i < runs; i++) {
        const start = performance.now();
        await variant.run();
        times[name]!.push(performance.now() - start);
      }
    }
  }
  return Object.fromEntries(names.map((n) => [n, spread(times[n]!)]));
}

/** The process's peak resident set size in bytes (Linux VmHWM; elsewhere the current RSS). */
export async function peakRssBytes(): Promise<number> {
  const { readFile } = await import("node:fs/promises");
  const status = await readFile("/proc/self/status", "utf8").catch(() => "");
  const hwm = /VmHWM:\s+(\d+) kB/.exec(status);
  return hwm ? Number(hwm[1]) * 1024 : process.memoryUsage().rss;
}

/**
 * Resets the kernel's RSS high-water mark to the current RSS (Linux: "5" into /proc/self/clear_refs),
 * so that a later peakRssBytes() covers only what ran after. False where that is not possible.
 */
export async function resetPeakRss(): Promise<boolean> {
  const { writeFile } = await import("node:fs/promises");
  return writeFile("/proc/self/clear_refs", "5").then(
    () => true,
    () => false,
  );
}
