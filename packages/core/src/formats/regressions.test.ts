// Regression tests for bugs found by review (each failed before its fix).
import { describe, expect, test } from "vitest";
import { LowrankError } from "../errors/lowrank-error.js";
import { parseJson } from "./json/parse-json.js";
import { stringifyPythonJson } from "./json/python-json.js";
import { parseHeader } from "./safetensors/parse-header.js";
import { serializeSafetensors } from "./safetensors/write-safetensors.js";
import { float32Tensor } from "./safetensors/dtype.js";

function readBack(bytes: Uint8Array): { names: string[]; headerText: string } {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const headerBytes = bytes.subarray(8, 8 + n);
  const header = parseHeader(headerBytes, bytes.byteLength - 8 - n, "t.safetensors");
  return { names: header.entries.map((e) => e.name), headerText: Buffer.from(headerBytes).toString("utf8") };
}

describe("safetensors", () => {
  test("a tensor with a zero dimension after the first needs no bytes and is accepted", () => {
    const header = Buffer.from(
      JSON.stringify({ w: { dtype: "F32", shape: [4, 0], data_offsets: [0, 0] }, x: { dtype: "F32", shape: [2], data_offsets: [0, 8] } }),
    );
    expect(parseHeader(header, 8, "t").entries.map((e) => e.name)).toEqual(["w", "x"]);
  });

  test("names like __proto__ and integers keep their place in the header", () => {
    const tensors = new Map([
      ["__proto__", float32Tensor(new Float32Array([1]), [1])],
      ["7", float32Tensor(new Float32Array([2]), [1])],
      ["a", float32Tensor(new Float32Array([3]), [1])],
    ]);
    const { names, headerText } = readBack(serializeSafetensors(tensors, { format: "pt" }));
    expect(names).toEqual(["7", "__proto__", "a"]);
    expect(headerText.startsWith('{"__metadata__":{"format":"pt"},"7":')).toBe(true);
  });

  test("__metadata__ cannot be a tensor name", () => {
    expect(() => serializeSafetensors(new Map([["__metadata__", float32Tensor(new Float32Array(1), [1])]]))).toThrow(LowrankError);
  });
});

describe("JSON as Python writes it", () => {
  test("-Infinity is read (Python's json writes it)", () => {
    expect(parseJson("[-Infinity, -1.5]").value).toEqual([-Infinity, -1.5]);
  });

  test("keys sort by code point, large integers stay integers", () => {
    expect(stringifyPythonJson({ "😀": 2, "\uff01": 1 })).toBe('{\n  "\\uff01": 1,\n  "\\ud83d\\ude00": 2\n}');
    expect(stringifyPythonJson([1e21, 123456789012345678901234])).toBe("[\n  1000000000000000000000,\n  123456789012345685803008\n]");
  });
});
