/**
 * `@lowrank/core/testing`: the conformance checks every backend must pass, as plain async
 * functions (no test framework inside), plus fixture helpers.
 */
export { backendConformanceChecks, type ConformanceCheck } from "./testing/conformance.js";
export { fixturesDir, sharedDir, requireFixture, maxAbsDiff, idRows } from "./testing/fixtures.js";
export { FIXTURE_PAIRS } from "./testing/fixture-pairs.js";
export { captureLowrankError, captureLowrankRejection } from "./testing/capture-error.js";
export { perturbedAdapter } from "./testing/perturbed-adapter.js";
export { randomAdapter } from "./testing/random-adapter.js";
