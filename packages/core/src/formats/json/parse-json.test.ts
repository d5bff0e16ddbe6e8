import { describe, expect, test } from "vitest";
import fc from "fast-check";
import { escapePointer, JsonSyntaxError, parseJson } from "./parse-json.js";

function syntaxError(text: string): JsonSyntaxError {
  let caught: unknown;
  try {
    parseJson(text);
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(JsonSyntaxError);
  return caught as JsonSyntaxError;
}

describe("parseJson accepts JSON", () => {
  test.each([
    ["{}", {}],
    ["[]", []],
    ['  {"a" : [1, -2, 3.5e2, true, false, null] }\n', { a: [1, -2, 350, true, false, null] }],
    ['"\\"\\\\\\/\\b\\f\\n\\r\\t"', '"\\/\b\f\n\r\t'],
    ['"\\u00e9\\u00E9"', "éé"],
    ['"\\ud83d\\ude00"', "😀"],
    ['"raw é ☕ 😀"', "raw é ☕ 😀"],
    ["\t\r\n 0 \t\r\n", 0],
    ["-0", -0],
    ["1E+2", 100],
    ["[NaN, Infinity]", [NaN, Infinity]],
    ['{"a":{"b":{"c":[[]]}}}', { a: { b: { c: [[]] } } }],
  ])("%s", (text, expected) => {
    expect(parseJson(text).value).toEqual(expected);
  });

  test("a __proto__ key is an own data property, not the prototype", () => {
    const value = parseJson('{"__proto__": {"polluted": true}, "x": 1}').value as Record<string, unknown>;
    expect(Object.getPrototypeOf(value)).toBe(Object.prototype);
    expect(Object.keys(value)).toEqual(["__proto__", "x"]);
    expect(Object.getOwnPropertyDescriptor(value, "__proto__")?.value).toEqual({ polluted: true });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  test("keys keep their order", () => {
    expect(Object.keys(parseJson('{"b":1,"a":2,"c":3}').value as object)).toEqual(["b", "a", "c"]);
  });

  test("nesting up to 500 levels is fine", () => {
    const text = "[".repeat(500) + "]".repeat(500);
    let v = parseJson(text).value;
    let depth = 0;
    while (Array.isArray(v) && v.length > 0) {
      v = v[0];
      depth++;
    }
    expect(depth).toBe(499);
  });

  test("property: agrees with JSON.parse on any JSON.stringify output", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const text = JSON.stringify(value, null, 1);
        expect(parseJson(text).value).toEqual(JSON.parse(text));
      }),
      { numRuns: 500 },
    );
  });
});

describe("parseJson rejects", () => {
  test.each([
    ["a duplicate key", '{"a":1,"a":2}', /duplicate key "a"/],
    ["a nested duplicate key", '{"x":{"k":1,"j":2,"k":3}}', /duplicate key "k"/],
    ["a duplicate __proto__ key", '{"__proto__":1,"__proto__":2}', /duplicate key "__proto__"/],
    ["a duplicate key spelled with an escape", '{"é":1,"\\u00e9":2}', /duplicate key "é"/],
    ["trailing text", "{} x", /unexpected text after the value/],
    ["a second value", "1 2", /unexpected text after the value/],
    ["trailing text after an array", "[1]]", /unexpected text after the value/],
    ["a bad escape", '"\\x41"', /bad escape/],
    ["a single-quote escape", '"\\\'"', /bad escape/],
    ["a short \\u escape", '"\\u12"', /bad \\u escape/],
    ["a non-hex \\u escape", '"\\u12G4"', /bad \\u escape/],
    ["a backslash at the end", '"abc\\', /bad escape|unterminated/],
    ["an unterminated string", '"abc', /unterminated string/],
    ["a raw newline in a string", '"a\nb"', /control character in string/],
    ["a raw tab in a string", '"a\tb"', /control character in string/],
    ["deep nesting", "[".repeat(10_000) + "]".repeat(10_000), /nesting too deep/],
    ["deep object nesting", '{"a":'.repeat(600) + "1" + "}".repeat(600), /nesting too deep/],
    ["a leading zero", "01", /unexpected text after the value/],
    ["a bare dot fraction", ".5", /unexpected character '\.'/],
    ["a trailing dot", "1.", /unexpected text after the value/],
    ["a plus sign", "+1", /unexpected character '\+'/],
    ["a lone minus", "-", /bad number/],
    ["an empty exponent", "[1e]", /expected ',' or '\]'/],
    ["a trailing comma in an array", "[1,]", /unexpected character '\]'/],
    ["a trailing comma in an object", '{"a":1,}', /expected a key/],
    ["an unquoted key", "{a:1}", /expected a key/],
    ["a missing colon", '{"a" 1}', /expected ':'/],
    ["single quotes", "'a'", /unexpected character/],
    ["a misspelled literal", "tru", /unexpected character 't'/],
    ["empty input", "", /unexpected end of input/],
    ["only whitespace", "   ", /unexpected end of input/],
    ["a form feed as whitespace", "\f1", /unexpected character/],
    ["an unclosed array", "[1, 2", /expected ',' or '\]'/],
    ["an unclosed object", '{"a": 1', /expected ',' or '\}'/],
  ])("%s", (_what, text, pattern) => {
    const e = syntaxError(text);
    expect(e.message).toMatch(pattern);
    expect(e.message).toMatch(/ at character \d+$/);
    expect(e.offset).toBeGreaterThanOrEqual(0);
    expect(e.offset).toBeLessThanOrEqual(text.length + 2);
  });

  test.each([
    ['{"a":1,"a":2}', 10], // just after the repeated key
    ["{} x", 3],
    ['"\\q"', 3],
  ])("reports the offset of %j as %s", (text, offset) => {
    expect(syntaxError(text).offset).toBe(offset);
  });
});

describe("floatPaths", () => {
  test("records numbers written with a fraction or exponent, not integers", () => {
    const { floatPaths } = parseJson(
      '{"zero": 0.0, "eps": 1e-05, "neg": -2.5E3, "three": 3, "minus": -7, "list": [1, 2.0, 3e0], "a/b": {"c~d": 1.5}, "s": "1.5", "n": NaN, "inf": Infinity}',
    );
    expect([...floatPaths].sort()).toEqual(["/a~1b/c~0d", "/eps", "/inf", "/list/1", "/list/2", "/n", "/neg", "/zero"].sort());
    expect(floatPaths.has("/three")).toBe(false);
    expect(floatPaths.has("/minus")).toBe(false);
    expect(floatPaths.has("/list/0")).toBe(false);
    expect(floatPaths.has("/s")).toBe(false);
  });

  test.each([
    ["0.0", true],
    ["1e-05", true],
    ["-2.5E3", true],
    ["1E5", true],
    ["3", false],
    ["-0", false],
    ["100", false],
  ])("a top-level %s is a float: %s", (text, isFloat) => {
    expect(parseJson(text).floatPaths.has("")).toBe(isFloat);
  });

  test("values are the numbers, whatever their spelling", () => {
    expect(parseJson("[0.0, 1e-05, -2.5E3, 3]").value).toEqual([0, 1e-5, -2500, 3]);
  });
});

describe("escapePointer", () => {
  test.each([
    ["plain", "plain"],
    ["a/b", "a~1b"],
    ["a~b", "a~0b"],
    ["~/", "~0~1"],
    ["~1", "~01"],
  ])("%s → %s", (key, pointer) => {
    expect(escapePointer(key)).toBe(pointer);
  });
});
