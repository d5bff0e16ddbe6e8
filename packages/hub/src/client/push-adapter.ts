import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { createRepo, repoExists, uploadFiles } from "@huggingface/hub";
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, LowrankError, readAdapter, type Logger } from "@lowrank/core";
import { TRAINING_SUMMARY_FILE } from "@lowrank/core/internal";
import { hubAuthFetch } from "./hub-auth-fetch.js";
import { checkRepoId, type HubConfig } from "./hub-config.js";
import { isHubRepoId } from "./hub-repo-id.js";
import { hubLibraryError } from "./hub-library-error.js";
import { modelCard, type TrainingSummary } from "./model-card.js";

export interface PushParams {
  dir: string;
  repo: string;
  private?: boolean;
  /** Branch to commit to (default main). */
  revision?: string;
  message?: string;
  config: HubConfig;
  logger?: Logger;
}

/**
 * Publishes an adapter folder: checks it is a valid PEFT adapter before anything is sent, creates
 * the repo when missing, and commits adapter_config.json, adapter_model.safetensors and a generated
 * README.md model card in one commit. Returns the commit URL.
 * The token is sent to the Hub's own origin only, whatever its form (see {@link hubAuthFetch}).
 * @throws LowrankError (invalid adapter); HubError USAGE (a token that cannot be sent, 401/403/404
 * with `status` and `url`), HubError IO_ERROR (other statuses, network failures) — the token never
 * appears.
 */
export async function pushAdapter(params: PushParams): Promise<{ commitUrl: string; commitOid: string; created: boolean }> {
  const repo = checkRepoId(params.repo);
  const { config } = params;
  const adapter = await readAdapter(params.dir, { logger: params.logger });
  const weights = path.join(params.dir, ADAPTER_WEIGHTS_FILE);
  const weightBytes = await readFile(weights).catch(() => {
    throw new LowrankError(
      "ADAPTER_INVALID",
      `${params.dir}: has no ${ADAPTER_WEIGHTS_FILE} (convert a legacy .bin by reading and writing it with lowrank first)`,
    );
  });
  let summary: TrainingSummary | undefined;
  try {
    summary = JSON.parse(await readFile(path.join(params.dir, TRAINING_SUMMARY_FILE), "utf8"));
  } catch {
    summary = undefined;
  }
  // No `accessToken`: @huggingface/hub refuses tokens that do not start with "hf_", and a self-hosted
  // Hub takes whatever its operator chose. The fetch adds the token for the Hub's own origin only.
  const authFetch = hubAuthFetch(config, `pushing to ${repo}`);
  const failedUrls = new WeakMap<object, string>();
  const tracedFetch: typeof fetch = (input, init) =>
    authFetch(input, init).catch((error: unknown) => {
      if (typeof error === "object" && error !== null) failedUrls.set(error, input instanceof Request ? input.url : String(input));
      throw error;
    });
  const hub = { hubUrl: config.hubUrl, fetch: tracedFetch };
  let created = false;
  try {
    if (!(await repoExists({ repo, ...hub }))) {
      await createRepo({ repo, private: params.private ?? false, ...hub } as Parameters<typeof createRepo>[0]);
      created = true;
    }
  } catch (error) {
    throw hubLibraryError(`creating ${repo}`, error, config, failedUrls);
  }
  const base = adapter.config.base_model_name_or_path;
  if (base && !isHubRepoId(base)) {
    params.logger?.warn(
      `${ADAPTER_CONFIG_FILE}: \`base_model_name_or_path\` ${JSON.stringify(base)} is not a Hub repo id (a local path?): the model card leaves out ` +
        `\`base_model\``,
    );
  }
  // A name that is also a folder here was a local base (e.g. "models/gpt2-mini"), not a Hub id.
  const card = modelCard({ repo, config: adapter.config, summary, isLocalPath: (p) => existsSync(p) || existsSync(path.resolve(params.dir, p)) });
  let output;
  try {
    output = await uploadFiles({
      repo,
      ...hub,
      branch: params.revision,
      commitTitle: params.message ?? `Upload ${adapter.config.use_dora ? "DoRA" : "LoRA"} adapter with lowrank`,
      useXet: false,
      files: [
        { path: ADAPTER_CONFIG_FILE, content: new Blob([await readFile(path.join(params.dir, ADAPTER_CONFIG_FILE))]) },
        { path: ADAPTER_WEIGHTS_FILE, content: new Blob([weightBytes]) },
        { path: "README.md", content: new Blob([card]) },
      ],
    } as Parameters<typeof uploadFiles>[0]);
  } catch (error) {
    throw hubLibraryError(`pushing to ${repo}`, error, config, failedUrls);
  }
  if (!output) throw new LowrankError("IO_ERROR", `pushing to ${repo}: the Hub returned no commit`);
  return { commitUrl: output.commit.url, commitOid: output.commit.oid, created };
}
