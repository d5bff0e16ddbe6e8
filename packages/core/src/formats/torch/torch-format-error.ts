import { LowrankError } from "../../errors/lowrank-error.js";

/**
 * Builds the one-line `PICKLE_INVALID` error used for every problem found in a `torch.save` file:
 * `<fileLabel>: <what is wrong>`.
 */
export function torchFormatError(fileLabel: string, message: string): LowrankError {
  return new LowrankError("PICKLE_INVALID", `${printable(fileLabel)}: ${message}`);
}

/** Makes text taken from an untrusted file safe to embed in a one-line message (escapes control characters, caps length). */
export function printable(text: string, maxLength = 120): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what this escapes
  const escaped = text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
  return escaped.length > maxLength ? `${escaped.slice(0, maxLength)}…` : escaped;
}
