// Client: configuration, the Python-compatible cache, pull and push.
export { resolveHubConfig, checkRepoId, DEFAULT_HUB_URL, type HubConfig } from "./client/hub-config.js";
export { RepoCache } from "./client/hf-cache.js";
export { pullRepo, fnmatch, type PullParams, type PullProgress, type PullResult } from "./client/pull-repo.js";
export { pushAdapter, type PushParams } from "./client/push-adapter.js";
export { modelCard, type TrainingSummary } from "./client/model-card.js";
export { resolveLocation } from "./client/resolve-location.js";
export { HubError } from "./client/hub-error.js";
export { hubAuthFetch } from "./client/hub-auth-fetch.js";
export { isHubRepoId } from "./client/hub-repo-id.js";
export { downloadBlob } from "./client/download-blob.js";

// Shared with @lowrank/hub-server (the self-hosted registry, a package of its own).
export { repoPathProblem } from "./shared/repo-path.js";
