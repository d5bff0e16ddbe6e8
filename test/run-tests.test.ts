import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, expect, test } from "vitest";
import { repoRoot } from "./cli-helpers.js";

// scripts/run-tests.mjs prints the closing line CI reads. Each case runs it on a throwaway vitest
// project of its own (through --config / --root) and reads that line and the exit code.
const tmp = mkdtempSync(path.join(os.tmpdir(), "lowrank-run-tests-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const PASSING = `test("passes", () => expect(1).toBe(1));`;
const PROJECTS: Record<string, string> = {
  "broken-setup": `${PASSING}
describe("broken setup", () => {
  beforeAll(() => { throw new Error("setup failed"); });
  test("one", () => expect(1).toBe(1));
  test("two", () => expect(1).toBe(1));
});`,
  "broken-teardown": `${PASSING}
describe("broken teardown", () => {
  afterAll(() => { throw new Error("teardown failed"); });
  test("runs", () => expect(1).toBe(1));
});`,
  "unhandled-rejection": `${PASSING}
test("leaves a rejection nobody handles", () => { Promise.reject(new Error("nobody waits")); });`,
  clean: `${PASSING}
test.skip("skipped on purpose", () => expect(1).toBe(2));`,
};

function runTests(project: string): { line: string; status: number | null } {
  const dir = path.join(tmp, project);
  mkdirSync(dir);
  writeFileSync(path.join(dir, "vitest.config.mjs"), `export default { test: { include: ["*.test.mjs"] } };\n`);
  writeFileSync(path.join(dir, "case.test.mjs"), `import { afterAll, beforeAll, describe, expect, test } from "vitest";\n${PROJECTS[project]}\n`);
  const run = spawnSync(process.execPath, [path.join(repoRoot, "scripts", "run-tests.mjs"), "--config", path.join(dir, "vitest.config.mjs"), "--root", dir], {
    encoding: "utf8",
    cwd: repoRoot,
  });
  return { line: run.stdout.trim().split("\n").at(-1)!, status: run.status };
}

test.each([
  ["tests a beforeAll kept from running count", "broken-setup", "1 passed, 2 failed, 0 skipped"],
  ["a failing afterAll counts", "broken-teardown", "2 passed, 1 failed, 0 skipped"],
  ["an unhandled error counts", "unhandled-rejection", "2 passed, 1 failed, 0 skipped"],
])("%s as failed", (_, project, line) => {
  const run = runTests(project);
  expect(run.line).toBe(line);
  expect(run.status).not.toBe(0);
});

test("a clean run passes and a test skipped on purpose counts as skipped", () => {
  expect(runTests("clean")).toEqual({ line: "1 passed, 0 failed, 1 skipped", status: 0 });
});
