import path from "node:path";
import { pathToFileURL } from "node:url";
import { LowrankError } from "../errors/lowrank-error.js";
import type { BackendRegistry } from "./backend-registry.js";

/** What a plugin module exports: a function that registers its backends. */
export type RegisterPlugin = (registry: BackendRegistry) => void | Promise<void>;

/**
 * Loads a plugin module (a file path or a package name) and lets it register its backends.
 * The module exports `register(registry)` (or a default export of that shape).
 * @throws LowrankError BACKEND_INVALID when the module cannot be loaded or has no register function.
 */
export async function loadBackendPlugin(specifier: string, registry: BackendRegistry): Promise<void> {
  const isPath = specifier.startsWith(".") || specifier.startsWith("/") || /\.(m?js|cjs)$/.test(specifier);
  const target = isPath ? pathToFileURL(path.resolve(specifier)).href : specifier;
  let mod: Record<string, unknown>;
  try {
    mod = (await import(target)) as Record<string, unknown>;
  } catch (error) {
    throw new LowrankError("BACKEND_INVALID", `plugin ${specifier}: cannot be loaded (${(error as Error).message.split("\n")[0]})`, { usage: true });
  }
  const candidate = (mod.register ?? (mod.default as Record<string, unknown> | undefined)?.register ?? mod.default) as unknown;
  if (typeof candidate !== "function") {
    throw new LowrankError("BACKEND_INVALID", `plugin ${specifier}: exports no \`register(registry)\` function`, { usage: true });
  }
  await (candidate as RegisterPlugin)(registry);
}
