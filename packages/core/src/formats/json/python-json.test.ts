import { describe, expect, test } from "vitest";
import fc from "fast-check";
import { parseJson } from "./parse-json.js";
import { pythonFloatRepr, pythonJsonString, stringifyPythonJson } from "./python-json.js";

describe("pythonFloatRepr matches Python's repr(float)", () => {
  // Expected strings printed by python3 `repr(x)`.
  test.each([
    [0.0, "0.0"],
    [1.0, "1.0"],
    [0.1, "0.1"],
    [1e-5, "1e-05"],
    [0.0001, "0.0001"],
    [1e16, "1e+16"],
    [123456789012345680.0, "1.2345678901234568e+17"],
    [1.5e-7, "1.5e-07"],
    [-0.0, "-0.0"],
    [2.5, "2.5"],
    [1e22, "1e+22"],
    [100.0, "100.0"],
    [1e15, "1000000000000000.0"],
    [1234567890123456.7, "1234567890123456.8"],
    [5e-324, "5e-324"],
    [1.7976931348623157e308, "1.7976931348623157e+308"],
    [0.30000000000000004, "0.30000000000000004"],
    [123.456, "123.456"],
    [-1e-7, "-1e-07"],
    [-2500, "-2500.0"],
    [NaN, "NaN"],
    [Infinity, "Infinity"],
    [-Infinity, "-Infinity"],
  ])("repr(%s) = %s", (value, expected) => {
    expect(pythonFloatRepr(value)).toBe(expected);
  });

  test("property: the repr parses back to the same double and always looks like a float", () => {
    fc.assert(
      fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), (x) => {
        const s = pythonFloatRepr(x);
        expect(Object.is(Number(s), x)).toBe(true);
        expect(s).toMatch(/^-?(\d+\.\d+|\d(\.\d+)?e[+-]\d{2,3})$/);
        // Python switches to exponent notation exactly when the decimal exponent is < -4 or >= 16.
        const exp = Math.floor(Math.log10(Math.abs(x)));
        if (x !== 0 && Number.isFinite(exp) && (exp < -5 || exp > 16)) expect(s).toContain("e");
        if (x !== 0 && exp > -4 && exp < 15) expect(s).not.toContain("e");
      }),
      { numRuns: 2000 },
    );
  });
});

describe("pythonJsonString (ensure_ascii)", () => {
  // Expected strings printed by python3 `json.dumps(s)`.
  test.each([
    ["plain", '"plain"'],
    ['a"b\\c/', '"a\\"b\\\\c/"'],
    ["\b\f\n\r\t", '"\\b\\f\\n\\r\\t"'],
    ["\u0000\u0001\u001f", '"\\u0000\\u0001\\u001f"'],
    ["\u007f", '"\\u007f"'],
    ["\u0080é", '"\\u0080\\u00e9"'],
    ["\u2028", '"\\u2028"'],
    ["☕", '"\\u2615"'],
    ["😀", '"\\ud83d\\ude00"'],
    ["\ud800", '"\\ud800"'],
    ["~ !", '"~ !"'],
  ])("%j → %s", (value, expected) => {
    expect(pythonJsonString(value)).toBe(expected);
  });
});

describe("stringifyPythonJson", () => {
  /** python3: print(json.dumps(sample, indent=2, sort_keys=True)) */
  const PYTHON_OUTPUT = `{
  "Zed": -0.0,
  "alpha_pattern": {
    "a/b~c": 0.5,
    "h.0.attn": 32
  },
  "big": 1e+16,
  "control": "\\u0001\\u001f\\b\\f\\n\\r\\t\\"\\\\/\\u007f",
  "empty_dict": {},
  "empty_list": [],
  "eps": 1e-05,
  "hundred": 100.0,
  "layers_pattern": null,
  "lora_alpha": 16,
  "lora_dropout": 0.0,
  "neg": -2.5,
  "nested": {
    "a": "tab\\there",
    "b": [
      1,
      2.5,
      null,
      true,
      false,
      {
        "z": "\\u00e9"
      },
      [],
      {}
    ]
  },
  "r": 8,
  "target_modules": [
    "c_attn",
    "c_proj"
  ],
  "unicode": "caf\\u00e9 \\u2615 \\ud83d\\ude00",
  "\\u00e9t\\u00e9": 1
}`;

  const sample = {
    r: 8,
    lora_alpha: 16,
    lora_dropout: 0.0,
    target_modules: ["c_attn", "c_proj"],
    empty_list: [],
    empty_dict: {},
    nested: { b: [1, 2.5, null, true, false, { z: "é" }, [], {}], a: "tab\there" },
    unicode: "café ☕ 😀",
    control: '\u0001\u001f\b\f\n\r\t"\\/\u007f',
    layers_pattern: null,
    eps: 1e-5,
    big: 1e16,
    neg: -2.5,
    hundred: 100.0,
    été: 1,
    Zed: -0.0,
    alpha_pattern: { "h.0.attn": 32, "a/b~c": 0.5 },
  };

  test("equals Python's json.dumps(indent=2, sort_keys=True) on a nested sample", () => {
    const floatPaths = new Set(["/lora_dropout", "/big", "/hundred", "/Zed"]);
    expect(stringifyPythonJson(sample, { floatPaths })).toBe(PYTHON_OUTPUT);
  });

  test("without floatPaths, integral numbers are written as integers", () => {
    const out = stringifyPythonJson(sample);
    expect(out).toContain('"lora_dropout": 0,');
    expect(out).toContain('"hundred": 100,');
    expect(out).toContain('"big": 10000000000000000,');
    expect(out).toContain('"eps": 1e-05,');
  });

  test("parseJson → stringifyPythonJson reproduces Python's text byte for byte", () => {
    const { value, floatPaths } = parseJson(PYTHON_OUTPUT);
    expect(stringifyPythonJson(value, { floatPaths })).toBe(PYTHON_OUTPUT);
  });

  test("a PEFT-style adapter_config.json round-trips", () => {
    const text = `{
  "alpha_pattern": {},
  "base_model_name_or_path": "gpt2-tiny",
  "bias": "none",
  "fan_in_fan_out": true,
  "inference_mode": true,
  "init_lora_weights": false,
  "layers_to_transform": null,
  "lora_alpha": 16,
  "lora_dropout": 0.0,
  "r": 4,
  "rank_pattern": {},
  "target_modules": [
    "c_proj",
    "c_attn"
  ],
  "use_rslora": false
}`;
    const { value, floatPaths } = parseJson(text);
    expect(stringifyPythonJson(value, { floatPaths })).toBe(text);
  });

  test("indent and sortKeys options follow json.dumps(indent=4, sort_keys=False)", () => {
    const expected = `{
    "b": [
        1,
        {
            "c": null
        }
    ],
    "a": 1.0
}`;
    expect(stringifyPythonJson({ b: [1, { c: null }], a: 1 }, { indent: 4, sortKeys: false, floatPaths: new Set(["/a"]) })).toBe(expected);
  });

  test.each([
    [[], "[]"],
    [{}, "{}"],
    [null, "null"],
    [true, "true"],
    [3, "3"],
    [-0.5, "-0.5"],
    ["x", '"x"'],
    [{ a: undefined, b: 1 }, '{\n  "b": 1\n}'],
    [{ a: undefined }, "{}"],
    [new Set(["q", "p"]), '[\n  "q",\n  "p"\n]'],
    [[undefined], "[\n  null\n]"],
  ])("scalar/edge %j", (value, expected) => {
    expect(stringifyPythonJson(value)).toBe(expected);
  });

  test("floatPaths pointers are escaped like parseJson's", () => {
    expect(stringifyPythonJson({ "a/b": { "c~": 2 } }, { floatPaths: new Set(["/a~1b/c~0"]) })).toBe('{\n  "a/b": {\n    "c~": 2.0\n  }\n}');
  });
});
