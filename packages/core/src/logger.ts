/** Where library code sends warnings and progress notes; the CLI prints them, tests collect them. */
export interface Logger {
  warn(message: string): void;
  info(message: string): void;
}

/** Writes warnings and notes to stderr. */
export const stderrLogger: Logger = {
  warn: (message) => process.stderr.write(`lowrank: warning: ${message}\n`),
  info: (message) => process.stderr.write(`${message}\n`),
};

/** Discards everything. */
export const silentLogger: Logger = { warn: () => undefined, info: () => undefined };

/** Keeps messages in arrays, for tests. */
export function memoryLogger(): Logger & { warnings: string[]; infos: string[] } {
  const warnings: string[] = [];
  const infos: string[] = [];
  return { warnings, infos, warn: (m) => void warnings.push(m), info: (m) => void infos.push(m) };
}
