/**
 * The one error class of lowrank. Every failure a user can cause or meet carries a `code` and says
 * whether it was bad input (`usage`: the CLI exits 2) or something else (exit 1).
 */
export type LowrankErrorCode =
  | "CONFIG_INVALID"
  | "TARGET_NOT_FOUND"
  | "TARGET_UNSUPPORTED"
  | "SAFETENSORS_INVALID"
  | "CHECKPOINT_INVALID"
  | "ADAPTER_INVALID"
  | "SHAPE_MISMATCH"
  | "PICKLE_INVALID"
  | "MERGE_NOT_FINITE"
  | "INIT_UNSUPPORTED"
  | "BACKEND_UNAVAILABLE"
  | "BACKEND_INVALID"
  | "IO_ERROR"
  | "TRAINING_DIVERGED"
  | "USAGE";

/** Codes that mean the caller gave bad input (CLI exit code 2). */
const USAGE_CODES: ReadonlySet<LowrankErrorCode> = new Set<LowrankErrorCode>([
  "CONFIG_INVALID",
  "TARGET_NOT_FOUND",
  "TARGET_UNSUPPORTED",
  "SAFETENSORS_INVALID",
  "CHECKPOINT_INVALID",
  "ADAPTER_INVALID",
  "SHAPE_MISMATCH",
  "PICKLE_INVALID",
  "MERGE_NOT_FINITE",
  "INIT_UNSUPPORTED",
  "USAGE",
]);

/** Marks LowrankErrors across copies of this module (ESM and CJS builds, several entry points). */
const BRAND = Symbol.for("@lowrank/core:LowrankError");

export class LowrankError extends Error {
  /** `instanceof` holds for a LowrankError made by any copy of @lowrank/core (dual-package safe). */
  static [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }

  readonly code: LowrankErrorCode;
  /** True when the input was at fault (exit code 2), false for other failures (exit code 1). */
  readonly usage: boolean;

  constructor(code: LowrankErrorCode, message: string, options: { cause?: unknown; usage?: boolean } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "LowrankError";
    Object.defineProperty(this, BRAND, { value: true });
    this.code = code;
    this.usage = options.usage ?? USAGE_CODES.has(code);
  }
}

/** Throws a LowrankError when `condition` is false; the message is built only then. */
export function ensure(condition: unknown, code: LowrankErrorCode, message: () => string): asserts condition {
  if (!condition) throw new LowrankError(code, message());
}
