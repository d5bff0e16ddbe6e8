import { LowrankError } from "@lowrank/core";

/** A numeric flag value, checked. @throws LowrankError USAGE naming the flag */
export function numberFlag(flag: string, text: string | undefined, check: { integer?: boolean; min?: number; max?: number } = {}): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  const bad =
    text.trim() === "" ||
    !Number.isFinite(n) ||
    (check.integer && !Number.isInteger(n)) ||
    (check.min !== undefined && n < check.min) ||
    (check.max !== undefined && n > check.max);
  if (bad) {
    const atLeast = check.min !== undefined ? ` ≥ ${check.min}` : "";
    const atMost = check.max !== undefined ? ` ≤ ${check.max}` : "";
    const want = `${check.integer ? "an integer" : "a number"}${atLeast}${atMost}`;
    throw new LowrankError("USAGE", `${flag} must be ${want}, got ${JSON.stringify(text)}`);
  }
  return n;
}

/** A comma-separated list flag. */
export function listFlag(text: string | undefined): string[] | undefined {
  return text === undefined
    ? undefined
    : text
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean);
}

/** One of a fixed set of words. */
export function choiceFlag<T extends string>(flag: string, text: string | undefined, choices: readonly T[]): T | undefined {
  if (text === undefined) return undefined;
  if (!(choices as readonly string[]).includes(text))
    throw new LowrankError("USAGE", `${flag} must be one of ${choices.join(", ")}, got ${JSON.stringify(text)}`);
  return text as T;
}
