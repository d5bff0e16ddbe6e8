import { describe, expect, test } from "vitest";
import { captureLowrankError } from "../testing/capture-error.js";
import { decodeUtf8 } from "./read-examples.js";

describe("decodeUtf8", () => {
  test("valid UTF-8 (with a byte-order mark) decodes; the first invalid line is named", () => {
    expect(decodeUtf8(Buffer.from("\ufeffcafé\nnaïve"), "f")).toBe("café\nnaïve");
    expect(captureLowrankError(() => decodeUtf8(Buffer.from([0x61, 0x0a, 0x62, 0x0a, 0x63, 0xe9, 0x0a, 0x64]), "--data f")).message).toBe(
      "--data f line 3: not valid UTF-8 text (save the file as UTF-8)",
    );
    // A sequence cut at the very end of the file.
    expect(captureLowrankError(() => decodeUtf8(Buffer.from([0x61, 0x0a, 0xe2, 0x82]), "--data f")).message).toMatch(/^--data f line 2: /);
  });
});
