import { LowrankError } from "@lowrank/core";
import { describe, expect, test } from "vitest";
import { BENCH_NOT_INSTALLED, loadBenchSuite } from "./load-bench-suite.js";

const failing = (code: string, message: string) => () => Promise.reject(Object.assign(new Error(message), { code }));

describe("loadBenchSuite", () => {
  test.each([
    ["ESM", "ERR_MODULE_NOT_FOUND", "Cannot find package '@lowrank/bench' imported from /x/dist/chunk.js"],
    ["CJS", "MODULE_NOT_FOUND", "Cannot find module '@lowrank/bench'\nRequire stack:\n- /x/dist/chunk.cjs"],
  ])("a missing @lowrank/bench (%s) is one clear usage error", async (_, code, message) => {
    const error = await loadBenchSuite(failing(code, message)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LowrankError);
    expect(error).toMatchObject({ code: "USAGE", message: BENCH_NOT_INSTALLED });
  });

  test("a module missing inside the suite is not reported as the suite missing", async () => {
    const error = await loadBenchSuite(
      failing("ERR_MODULE_NOT_FOUND", "Cannot find package '@tensorflow/tfjs' imported from /app/node_modules/@lowrank/bench/dist/index.js"),
    ).catch((e: unknown) => e);
    expect(error).not.toBeInstanceOf(LowrankError);
    expect((error as Error).message).toMatch(/@tensorflow\/tfjs/);
  });
});
