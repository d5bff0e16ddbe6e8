/**
 * A strict JSON parser that, unlike JSON.parse, reports duplicate object keys and remembers which
 * numbers were written as floats ("0.0", "1e-05"), so a Python-written file can be written back
 * byte for byte. Paths are JSON Pointers ("/lora_dropout", "/alpha_pattern/a.b").
 */
export interface ParsedJson {
  value: unknown;
  /** JSON Pointers of numbers whose text had a fraction or exponent. */
  floatPaths: Set<string>;
}

export class JsonSyntaxError extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(message);
    this.name = "JsonSyntaxError";
  }
}

const MAX_DEPTH = 512;

export function escapePointer(key: string): string {
  return key.replace(/~/g, "~0").replace(/\//g, "~1");
}

export function parseJson(text: string): ParsedJson {
  let pos = 0;
  const floatPaths = new Set<string>();

  const fail = (what: string): never => {
    throw new JsonSyntaxError(`${what} at character ${pos}`, pos);
  };
  const skipWhitespace = (): void => {
    while (pos < text.length) {
      const c = text.charCodeAt(pos);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) pos++;
      else break;
    }
  };

  const parseString = (): string => {
    pos++; // opening quote
    let out = "";
    let chunkStart = pos;
    for (;;) {
      if (pos >= text.length) fail("unterminated string");
      const c = text.charCodeAt(pos);
      if (c === 0x22) {
        out += text.slice(chunkStart, pos);
        pos++;
        return out;
      }
      if (c < 0x20) fail("control character in string");
      if (c === 0x5c) {
        out += text.slice(chunkStart, pos);
        const e = text[pos + 1];
        pos += 2;
        switch (e) {
          case '"':
            out += '"';
            break;
          case "\\":
            out += "\\";
            break;
          case "/":
            out += "/";
            break;
          case "b":
            out += "\b";
            break;
          case "f":
            out += "\f";
            break;
          case "n":
            out += "\n";
            break;
          case "r":
            out += "\r";
            break;
          case "t":
            out += "\t";
            break;
          case "u": {
            const hex = text.slice(pos, pos + 4);
            if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail("bad \\u escape");
            out += String.fromCharCode(parseInt(hex, 16));
            pos += 4;
            break;
          }
          default:
            fail("bad escape");
        }
        chunkStart = pos;
      } else {
        pos++;
      }
    }
  };

  const parseNumber = (pointer: string): number => {
    const match = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(text.slice(pos, pos + 400));
    if (!match || match[0] === "-") fail("bad number");
    pos += match![0].length;
    if (match![2] !== undefined || match![3] !== undefined) floatPaths.add(pointer);
    return Number(match![0]);
  };

  const parseValue = (pointer: string, depth: number): unknown => {
    if (depth > MAX_DEPTH) fail("nesting too deep");
    skipWhitespace();
    const c = text[pos];
    if (c === "{") {
      pos++;
      const obj: Record<string, unknown> = Object.create(null);
      skipWhitespace();
      if (text[pos] === "}") {
        pos++;
        return { ...obj };
      }
      for (;;) {
        skipWhitespace();
        if (text[pos] !== '"') fail("expected a key");
        const key = parseString();
        if (Object.hasOwn(obj, key)) fail(`duplicate key "${key}"`);
        skipWhitespace();
        if (text[pos] !== ":") fail("expected ':'");
        pos++;
        obj[key] = parseValue(`${pointer}/${escapePointer(key)}`, depth + 1);
        skipWhitespace();
        if (text[pos] === ",") {
          pos++;
          continue;
        }
        if (text[pos] === "}") {
          pos++;
          break;
        }
        fail("expected ',' or '}'");
      }
      // A plain object (keys like "__proto__" are kept as data by defineProperty).
      const plain: Record<string, unknown> = {};
      for (const key of Object.keys(obj)) Object.defineProperty(plain, key, { value: obj[key], enumerable: true, writable: true, configurable: true });
      return plain;
    }
    if (c === "[") {
      pos++;
      const arr: unknown[] = [];
      skipWhitespace();
      if (text[pos] === "]") {
        pos++;
        return arr;
      }
      for (;;) {
        arr.push(parseValue(`${pointer}/${arr.length}`, depth + 1));
        skipWhitespace();
        if (text[pos] === ",") {
          pos++;
          continue;
        }
        if (text[pos] === "]") {
          pos++;
          break;
        }
        fail("expected ',' or ']'");
      }
      return arr;
    }
    if (c === '"') return parseString();
    for (const [word, val] of [
      ["true", true],
      ["false", false],
      ["null", null],
      ["NaN", NaN],
      ["Infinity", Infinity],
      ["-Infinity", -Infinity],
    ] as const) {
      if (text.startsWith(word, pos)) {
        pos += word.length;
        if (typeof val === "number") floatPaths.add(pointer);
        return val;
      }
    }
    if (c === "-" || (c !== undefined && c >= "0" && c <= "9")) return parseNumber(pointer);
    return fail(pos >= text.length ? "unexpected end of input" : `unexpected character '${c}'`);
  };

  const value = parseValue("", 0);
  skipWhitespace();
  if (pos !== text.length) fail("unexpected text after the value");
  return { value, floatPaths };
}
