import { LowrankError } from "../errors/lowrank-error.js";

/** Typed reads of config.json fields with clear errors. */
export class ConfigValues {
  constructor(
    private readonly config: Record<string, unknown>,
    private readonly label: string,
  ) {}

  number(key: string, fallback?: number): number {
    const v = this.config[key];
    if (typeof v === "number" && Number.isFinite(v)) return v;
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      throw new LowrankError("CHECKPOINT_INVALID", `${this.label}: config.json has no \`${key}\``);
    }
    throw new LowrankError("CHECKPOINT_INVALID", `${this.label}: config.json \`${key}\` must be a number, got ${JSON.stringify(v)}`);
  }

  /** A number, or undefined when the field is absent or null. */
  optionalNumber(key: string): number | undefined {
    const v = this.config[key];
    return v === undefined || v === null ? undefined : this.number(key);
  }

  string(key: string, fallback: string): string {
    const v = this.config[key];
    return typeof v === "string" ? v : fallback;
  }

  boolean(key: string, fallback: boolean): boolean {
    const v = this.config[key];
    return typeof v === "boolean" ? v : fallback;
  }

  /** A token id, which configs sometimes write as a list. */
  tokenId(key: string): number | undefined {
    const v = this.config[key];
    if (Array.isArray(v) && typeof v[0] === "number") return v[0];
    return typeof v === "number" ? v : undefined;
  }
}
