// `lowrank pull` shows bytes as they arrive: a cli-progress bar on a terminal, one line per file otherwise.
import { describe, expect, test } from "vitest";
import { formatBytes, pullReporter } from "../packages/cli/src/commands/hub-commands.js";

/** A terminal-like stream that records what is written. */
function fakeTerminal(isTTY: boolean) {
  const chunks: string[] = [];
  const stream = {
    isTTY,
    columns: 160,
    write(chunk: unknown, encoding?: unknown, callback?: unknown) {
      chunks.push(String(chunk));
      const done = typeof encoding === "function" ? encoding : callback;
      if (typeof done === "function") done();
      return true;
    },
    on() {
      return stream;
    },
    once() {
      return stream;
    },
    removeListener() {
      return stream;
    },
    off() {
      return stream;
    },
  };
  return { stream: stream as unknown as NodeJS.WritableStream & { isTTY?: boolean }, text: () => chunks.join("") };
}

function logger() {
  const lines: string[] = [];
  return { lines, info: (m: string) => void lines.push(m), warn: (m: string) => void lines.push(`warn: ${m}`) };
}

describe("pull progress", () => {
  test("on a terminal: a bar with the file, the percentage and the bytes, then one line per file", () => {
    const term = fakeTerminal(true);
    const log = logger();
    const reporter = pullReporter(log, term.stream);
    const total = 3 * 1024 * 1024;
    for (const bytes of [0, total / 4, total / 2, total]) reporter.onProgress({ path: "adapter_model.safetensors", bytes, total });
    reporter.onFile({ path: "adapter_model.safetensors", size: total, cached: false });
    reporter.onProgress({ path: "adapter_config.json", bytes: 785, total: 785 });
    reporter.onFile({ path: "adapter_config.json", size: 785, cached: true });
    reporter.stop();
    const shown = term.text();
    expect(shown).toContain("adapter_model.safetensors |");
    expect(shown).toMatch(/0% \| 0 B \/ 3\.0 MB/);
    expect(shown).toMatch(/100% \| 3\.0 MB \/ 3\.0 MB/);
    expect(shown).toContain("adapter_config.json |");
    expect(log.lines).toEqual(["pulled  adapter_model.safetensors (3,145,728 bytes)", "cached  adapter_config.json (785 bytes)"]);
  });

  test("not a terminal: no bar, the one line per file", () => {
    const term = fakeTerminal(false);
    const log = logger();
    const reporter = pullReporter(log, term.stream);
    reporter.onProgress({ path: "a.bin", bytes: 10, total: 100 });
    reporter.onProgress({ path: "a.bin", bytes: 100, total: 100 });
    reporter.onFile({ path: "a.bin", size: 100, cached: false });
    reporter.stop();
    expect(term.text()).toBe("");
    expect(log.lines).toEqual(["pulled  a.bin (100 bytes)"]);
  });

  test.each([
    [0, "0 B"],
    [812, "812 B"],
    [1024, "1.0 KB"],
    [65960, "64.4 KB"],
    [3 * 1024 * 1024, "3.0 MB"],
    [1.5 * 1024 ** 3, "1.5 GB"],
  ])("formatBytes(%i) = %s", (n, shown) => {
    expect(formatBytes(n)).toBe(shown);
  });
});
