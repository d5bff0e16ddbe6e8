import path from "node:path";
import { expect, test } from "vitest";
import { requireFixture } from "@lowrank/core/testing";
import { lowrank } from "./cli-helpers.js";

// `lowrank web`'s bad input fails before it serves anything, in one line naming the flag or file.
test.each([
  [["--adapter", "nameless"], /^lowrank: error: --adapter nameless: expected NAME=<adapter folder or Hub id>$/m],
  [["--adapter", `a=${path.join(requireFixture("gpt2-tiny"), "no-such-adapter")}`], /--adapter a=.*no-such-adapter: no such adapter folder$/m],
  [["--port", "99999"], /--port/],
])("lowrank web %j fails in one line", (extra, message) => {
  const run = lowrank(["web", "--model", requireFixture("gpt2-tiny"), ...extra]);
  expect(run.status).not.toBe(0);
  expect(run.stderr.trim().split("\n")).toHaveLength(1);
  expect(run.stderr).toMatch(message);
});

test("lowrank web on a missing model names it", () => {
  const run = lowrank(["web", "--model", "/nowhere/model.onnx"]);
  expect(run.status).not.toBe(0);
  expect(run.stderr.trim()).toBe("lowrank: error: /nowhere/model.onnx: no such ONNX file or folder");
});
