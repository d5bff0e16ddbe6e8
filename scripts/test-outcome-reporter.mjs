// Vitest reporter behind scripts/run-tests.mjs's closing line. It counts tests as passed, failed or
// skipped, where "skipped" means skipped on purpose (skip, todo, only elsewhere, ctx.skip()). These
// count as failed:
// - a test that never ran because a beforeAll hook (or its suite) failed;
// - each suite or file with an error outside its tests (a failing afterAll, an import error) that
//   no test above was counted failed for;
// - each unhandled error.
// The counts are written as JSON ({ passed, failed, skipped, unhandledErrors }) to the file named by
// the environment variable LOWRANK_TEST_OUTCOME.
import { writeFileSync } from "node:fs";

/** The suites and the module a test sits in, innermost first. */
function ancestors(test) {
  const out = [];
  for (let at = test.parent; at; at = at.type === "module" ? undefined : at.parent) out.push(at);
  return out;
}

/** Counts the outcome of a finished run; see the file comment for the rules. */
export function countOutcome(testModules, unhandledErrors) {
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  const blamed = new Set();
  for (const module of testModules) {
    for (const test of module.children.allTests()) {
      const { state } = test.result();
      if (state === "passed") passed++;
      else if (state === "failed") failed++;
      else {
        const broken = test.options.mode === "run" || test.options.mode === "only" ? ancestors(test).find((s) => s.errors().length > 0) : undefined;
        if (broken) {
          failed++;
          blamed.add(broken);
        } else skipped++;
      }
    }
    for (const entity of [module, ...module.children.allSuites()]) {
      if (entity.errors().length > 0 && !blamed.has(entity)) failed++;
    }
  }
  failed += unhandledErrors.length;
  return { passed, failed, skipped, unhandledErrors: unhandledErrors.length };
}

export default class TestOutcomeReporter {
  onTestRunEnd(testModules, unhandledErrors) {
    const file = process.env.LOWRANK_TEST_OUTCOME;
    if (file) writeFileSync(file, `${JSON.stringify(countOutcome(testModules, unhandledErrors))}\n`);
  }
}
