import os from "node:os";
import path from "node:path";
import { LowrankError } from "@lowrank/core";

/** Where the Hub is, who we are, and where files are cached — as huggingface_hub resolves them. */
export interface HubConfig {
  hubUrl: string;
  token?: string;
  cacheDir: string;
  /** HF_HUB_OFFLINE: resolve from the cache only. */
  offline: boolean;
}

export const DEFAULT_HUB_URL = "https://huggingface.co";

function truthy(value: string | undefined): boolean {
  return value !== undefined && ["1", "true", "yes", "on"].includes(value.toLowerCase());
}

/**
 * Resolves the Hub address (`hubUrl`, else HF_ENDPOINT), the token (`token`, else HF_TOKEN, else
 * HUGGING_FACE_HUB_TOKEN) and the cache (HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub).
 */
export function resolveHubConfig(options: { hubUrl?: string; token?: string; cacheDir?: string } = {}, env: NodeJS.ProcessEnv = process.env): HubConfig {
  const hubUrl = (options.hubUrl ?? env.HF_ENDPOINT ?? DEFAULT_HUB_URL).replace(/\/+$/, "");
  if (!/^https?:\/\/[^\s/]+/.test(hubUrl))
    throw new LowrankError("USAGE", `the Hub address ${JSON.stringify(hubUrl)} is not an http(s) URL (check --hub-url / HF_ENDPOINT)`);
  const home = env.HF_HOME ?? path.join(env.XDG_CACHE_HOME ?? path.join(os.homedir(), ".cache"), "huggingface");
  const cacheDir = options.cacheDir ?? env.HF_HUB_CACHE ?? env.HUGGINGFACE_HUB_CACHE ?? path.join(home, "hub");
  const token = options.token ?? env.HF_TOKEN ?? env.HUGGING_FACE_HUB_TOKEN;
  return { hubUrl, token: token === "" ? undefined : token, cacheDir, offline: truthy(env.HF_HUB_OFFLINE) };
}

/** A repo id as the Hub spells it: "name" or "org/name". */
export function checkRepoId(repo: string): string {
  if (!/^[A-Za-z0-9][\w.-]{0,95}(\/[A-Za-z0-9][\w.-]{0,95})?$/.test(repo) || repo.includes("..")) {
    throw new LowrankError("USAGE", `${JSON.stringify(repo)} is not a Hub repo id (expected "name" or "org/name")`);
  }
  return repo;
}

/** Removes the token from text that might echo it (URLs, server messages). */
export function redact(text: string, token: string | undefined): string {
  return token ? text.split(token).join("***") : text;
}
