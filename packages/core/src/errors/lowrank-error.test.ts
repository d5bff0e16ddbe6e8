import { expect, test } from "vitest";
import { LowrankError } from "./lowrank-error.js";

test("instanceof LowrankError holds across copies of the module (ESM and CJS builds, several entry points)", async () => {
  const own = new LowrankError("USAGE", "x");
  expect(own).toBeInstanceOf(LowrankError);
  expect(own).toBeInstanceOf(Error);
  expect(new Error("x")).not.toBeInstanceOf(LowrankError);
  expect((null as unknown) instanceof LowrankError).toBe(false);
  // The CommonJS build is a second copy of the class: its errors are LowrankErrors here too.
  const { createRequire } = await import("node:module");
  const cjs = createRequire(import.meta.url)("../../dist/index.cjs") as { LowrankError: typeof LowrankError };
  expect(cjs.LowrankError).not.toBe(LowrankError);
  const other = new cjs.LowrankError("SHAPE_MISMATCH", "y");
  expect(other).toBeInstanceOf(LowrankError);
  expect(own).toBeInstanceOf(cjs.LowrankError);
  expect({ name: "LowrankError", code: "USAGE" }).not.toBeInstanceOf(LowrankError);
});
