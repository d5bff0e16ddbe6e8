// @lowrank/bench: the benchmark suite behind `lowrank bench` and the demo's E2E helpers. Private to
// the repository; it may reach into the backends beyond their LowrankBackend contract.
export { runBenchSuite, writeJsonResults, type SuiteOptions } from "./run-suite.js";
export type { BenchResults, TargetCheck } from "./bench-results.js";
export { writeBenchReport } from "./bench-report.js";
export { runWorkerJob, type WorkerJob } from "./bench-worker.js";
export { corpusBleu } from "./metrics/bleu.js";
export { generateGreedy } from "./e2e-quality.js";
export { loadE2e, splitE2e, e2ePrompt, e2eExample, type E2eGroup } from "./tasks/e2e.js";
export { lineChartSvg, barChartSvg } from "./report/svg-chart.js";
