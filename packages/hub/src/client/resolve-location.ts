import { stat } from "node:fs/promises";
import { pullRepo } from "./pull-repo.js";
import type { HubConfig } from "./hub-config.js";

/** "org/name" or "org/name@revision", when nothing of that name exists on disk. */
const HUB_ID = /^([A-Za-z0-9][\w.-]{0,95}\/[A-Za-z0-9][\w.-]{0,95})(?:@([\w./-]+))?$/;

/**
 * A model or adapter argument as a local folder: an existing path as it is, else a Hub id
 * ("org/name[@revision]") pulled into the cache (or found there when offline).
 */
export async function resolveLocation(arg: string, config: HubConfig, options: { include?: string[] } = {}): Promise<string> {
  if (await stat(arg).catch(() => undefined)) return arg;
  const match = HUB_ID.exec(arg);
  if (!match) return arg;
  const pulled = await pullRepo({ repo: match[1]!, revision: match[2], include: options.include, config });
  return pulled.snapshotDir;
}
