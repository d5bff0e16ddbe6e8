export { buildProgram, runCli } from "./program.js";
export { LOWRANK_VERSION } from "./version.js";
export { BACKEND_SETUP, HUB_CLIENT, LOGGER, type CliContext, type GlobalOptions, type HubClient } from "./cli-context.js";
