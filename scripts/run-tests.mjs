#!/usr/bin/env node
// Runs vitest once, then prints the plain closing line CI reads: "N passed, N failed, N skipped".
// Tests that never ran because a hook or their suite failed, suites that failed outside their tests
// and unhandled errors count as failed (see test-outcome-reporter.mjs). Exits non-zero when any
// test failed, when vitest itself failed, or when no test ran. Arguments go to `vitest run` (file
// filters, or `--config` / `--root` for another project).
import { spawnSync } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import os from "node:os";
import { fileURLToPath } from "node:url";
import path from "node:path";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const outcomeFile = path.join(os.tmpdir(), `lowrank-test-outcome-${process.pid}.json`);
rmSync(outcomeFile, { force: true });
const vitest = path.join(root, "node_modules", "vitest", "vitest.mjs");
const reporter = path.join(root, "scripts", "test-outcome-reporter.mjs");
const run = spawnSync(process.execPath, [vitest, "run", "--reporter=default", `--reporter=${reporter}`, ...process.argv.slice(2)], {
  cwd: root,
  stdio: "inherit",
  env: { ...process.env, LOWRANK_TEST_OUTCOME: outcomeFile },
});

let outcome = { passed: 0, failed: 0, skipped: 0 };
try {
  outcome = JSON.parse(readFileSync(outcomeFile, "utf8"));
} catch (error) {
  console.error(`run-tests: vitest reported no outcome (${error.message.split("\n")[0]})`);
  outcome.failed += 1;
} finally {
  rmSync(outcomeFile, { force: true });
}
const { passed, failed, skipped } = outcome;
console.log(`\n${passed} passed, ${failed} failed, ${skipped} skipped`);
const ok = run.status === 0 && failed === 0 && passed > 0;
process.exit(ok ? 0 : 1);
