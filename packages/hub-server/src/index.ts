// The self-hosted Hub-compatible registry. The client (pull, push) is @lowrank/hub.
export { startHubServer, type HubServer, type HubServerOptions } from "./start-hub-server.js";
export type { HubLogger } from "./hub-request.js";
