export { buildProgram, runCli } from "./program.js";
export { LOWRANK_VERSION } from "./version.js";
export { loadE2e, splitE2e, e2ePrompt, e2eExample, type E2eGroup } from "./tasks/e2e.js";
export { lineChartSvg, barChartSvg } from "./report/svg-chart.js";
