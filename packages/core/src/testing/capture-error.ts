import { LowrankError } from "../errors/lowrank-error.js";

function describeThrown(value: unknown): string {
  if (value instanceof Error) return `${value.name}: ${value.message}`;
  let text: string;
  try {
    text = String(value);
  } catch {
    text = "(unprintable)";
  }
  return `a non-Error ${typeof value}: ${text}`;
}

function checked(caught: unknown, verb: "threw" | "rejected with"): LowrankError {
  if (caught instanceof LowrankError) return caught;
  throw new Error(`expected a LowrankError, but it ${verb} ${describeThrown(caught)}`, { cause: caught });
}

/** Runs fn and returns the LowrankError it throws; throws an Error if it returns normally or throws something else. */
export function captureLowrankError(fn: () => unknown): LowrankError {
  try {
    fn();
  } catch (error) {
    return checked(error, "threw");
  }
  throw new Error("expected a LowrankError, but the call returned normally");
}

/** Awaits p and returns the LowrankError it rejects with; throws an Error if it resolves or rejects with something else. */
export async function captureLowrankRejection(p: Promise<unknown>): Promise<LowrankError> {
  try {
    await p;
  } catch (error) {
    return checked(error, "rejected with");
  }
  throw new Error("expected a LowrankError, but the promise resolved");
}
