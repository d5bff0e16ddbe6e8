import { escapePointer } from "./parse-json.js";

/** Python's `repr(float)`: shortest round-trip digits, ".0" on integral values, "1e-05" style exponents. */
export function pythonFloatRepr(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "Infinity";
  if (value === -Infinity) return "-Infinity";
  if (value === 0) return Object.is(value, -0) ? "-0.0" : "0.0";
  const [mantissa, expText] = Math.abs(value).toExponential().split("e");
  const exp = Number(expText);
  const digits = mantissa!.replace(".", ""); // split always yields a first element
  const sign = value < 0 ? "-" : "";
  if (exp < -4 || exp >= 16) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    const e = Math.abs(exp) < 10 ? `0${Math.abs(exp)}` : String(Math.abs(exp));
    return `${sign}${m}e${exp < 0 ? "-" : "+"}${e}`;
  }
  if (exp < 0) return `${sign}0.${"0".repeat(-exp - 1)}${digits}`;
  const intPart = digits.slice(0, exp + 1).padEnd(exp + 1, "0");
  const frac = digits.slice(exp + 1);
  return `${sign}${intPart}.${frac === "" ? "0" : frac}`;
}

/** A JSON string literal as Python's json.dumps writes it (ensure_ascii=True). */
export function pythonJsonString(value: string): string {
  let out = '"';
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    const ch = value[i];
    if (ch === '"') out += '\\"';
    else if (ch === "\\") out += "\\\\";
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (ch === "\b") out += "\\b";
    else if (ch === "\f") out += "\\f";
    else if (c < 0x20 || c > 0x7e) out += `\\u${c.toString(16).padStart(4, "0")}`;
    else out += ch;
  }
  return `${out}"`;
}

/** Orders strings by Unicode code point, as Python's sorted() does (JavaScript compares UTF-16 units). */
function compareCodePoints(a: string, b: string): number {
  const x = Array.from(a);
  const y = Array.from(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i]!.codePointAt(0)! - y[i]!.codePointAt(0)!;
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

export interface PythonJsonOptions {
  /** JSON Pointers of numbers to write as floats even when integral (from parseJson). */
  floatPaths?: ReadonlySet<string>;
  /** Sort object keys (Python's sort_keys=True). Default true. */
  sortKeys?: boolean;
  indent?: number;
}

/**
 * Serialises like Python's `json.dumps(value, indent=2, sort_keys=True)`, which is how PEFT writes
 * adapter_config.json. Numbers are written as Python floats when non-integral or listed in
 * `floatPaths`, else as integers.
 */
export function stringifyPythonJson(value: unknown, options: PythonJsonOptions = {}): string {
  const indent = options.indent ?? 2;
  const sortKeys = options.sortKeys ?? true;
  const floats = options.floatPaths ?? new Set<string>();

  const write = (v: unknown, pointer: string, level: number): string => {
    if (v === null || v === undefined) return "null";
    if (typeof v === "boolean") return v ? "true" : "false";
    if (typeof v === "number") {
      if (floats.has(pointer) || !Number.isInteger(v)) return pythonFloatRepr(v);
      return Math.abs(v) >= 1e21 ? BigInt(v).toString() : String(v);
    }
    if (typeof v === "string") return pythonJsonString(v);
    const pad = " ".repeat(indent * (level + 1));
    const close = " ".repeat(indent * level);
    if (Array.isArray(v)) {
      if (v.length === 0) return "[]";
      const items = v.map((item, i) => `${pad}${write(item, `${pointer}/${i}`, level + 1)}`);
      return `[\n${items.join(",\n")}\n${close}]`;
    }
    if (v instanceof Set) return write([...v], pointer, level);
    const record = v as Record<string, unknown>;
    const keys = Object.keys(record).filter((k) => record[k] !== undefined);
    if (sortKeys) keys.sort(compareCodePoints);
    if (keys.length === 0) return "{}";
    const items = keys.map((k) => `${pad}${pythonJsonString(k)}: ${write(record[k], `${pointer}/${escapePointer(k)}`, level + 1)}`);
    return `{\n${items.join(",\n")}\n${close}}`;
  };
  return write(value, "", 0);
}
