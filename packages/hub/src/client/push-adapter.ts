import { readFile } from "node:fs/promises";
import path from "node:path";
import { createRepo, repoExists, uploadFiles } from "@huggingface/hub";
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, LowrankError, readAdapter, TRAINING_SUMMARY_FILE, type Logger } from "@lowrank/core";
import { checkRepoId, redact, type HubConfig } from "./hub-config.js";
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
 * Re-throws @huggingface/hub errors as one line, without the token: 401/403 say what to check, 404
 * says not found, other statuses give the Hub's message, and a connection that failed or broke off
 * names the Hub and the network error.
 */
function hubError(what: string, error: unknown, config: HubConfig): LowrankError {
  const { token } = config;
  const e = error as { statusCode?: number; message?: string; cause?: { code?: string; message?: string } };
  const status = e.statusCode;
  const message = redact((e.message ?? String(error)).split("\n")[0].slice(0, 300), token);
  if (status === 401 || status === 403) return new LowrankError("USAGE", `${what}: ${status} ${status === 401 ? "unauthorized" : "forbidden"}: ${token ? "the token (--token / HF_TOKEN) has no access" : "it needs a token (--token / HF_TOKEN)"} (${message})`);
  if (status === 404) return new LowrankError("USAGE", `${what}: 404 not found (${message})`);
  if (status !== undefined) return new LowrankError("IO_ERROR", `${what}: the Hub answered ${status} (${message})`);
  const cause = redact(String(e.cause?.message ?? e.cause?.code ?? message).split("\n")[0].slice(0, 200), token);
  return new LowrankError("IO_ERROR", `${what}: the connection to ${config.hubUrl} failed or broke off (${cause})`);
}

/**
 * Publishes an adapter folder: checks it is a valid PEFT adapter before anything is sent, creates
 * the repo when missing, and commits adapter_config.json, adapter_model.safetensors and a generated
 * README.md model card in one commit. Returns the commit URL.
 * @throws LowrankError (invalid adapter, unauthorized, Hub errors) — the token never appears.
 */
export async function pushAdapter(params: PushParams): Promise<{ commitUrl: string; commitOid: string; created: boolean }> {
  const repo = checkRepoId(params.repo);
  const { config } = params;
  const adapter = await readAdapter(params.dir, { logger: params.logger });
  const weights = path.join(params.dir, ADAPTER_WEIGHTS_FILE);
  const weightBytes = await readFile(weights).catch(() => {
    throw new LowrankError("ADAPTER_INVALID", `${params.dir}: has no ${ADAPTER_WEIGHTS_FILE} (convert a legacy .bin by reading and writing it with lowrank first)`);
  });
  let summary: TrainingSummary | undefined;
  try {
    summary = JSON.parse(await readFile(path.join(params.dir, TRAINING_SUMMARY_FILE), "utf8"));
  } catch {
    summary = undefined;
  }
  const credentials = config.token ? { accessToken: config.token } : {};
  const hub = { hubUrl: config.hubUrl, ...credentials };
  let created = false;
  try {
    if (!(await repoExists({ repo, ...hub }))) {
      await createRepo({ repo, private: params.private ?? false, ...hub } as Parameters<typeof createRepo>[0]);
      created = true;
    }
  } catch (error) {
    throw hubError(`creating ${repo}`, error, config);
  }
  const card = modelCard({ repo, config: adapter.config, summary });
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
    throw hubError(`pushing to ${repo}`, error, config);
  }
  if (!output) throw new LowrankError("IO_ERROR", `pushing to ${repo}: the Hub returned no commit`);
  return { commitUrl: output.commit.url, commitOid: output.commit.oid, created };
}
