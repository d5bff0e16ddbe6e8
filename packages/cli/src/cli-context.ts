import "reflect-metadata";
import { container as rootContainer, type DependencyContainer, type InjectionToken } from "tsyringe";
import { BackendRegistry, loadBackendPlugin, stderrLogger, type Logger } from "@lowrank/core";
import type { HubConfig, pullRepo, pushAdapter, resolveHubConfig, resolveLocation } from "@lowrank/hub";
import { choiceFlag } from "./commands/parse-flags.js";

/** Options every command shares. */
export interface GlobalOptions {
  debug?: boolean;
  plugin?: string[];
  hubUrl?: string;
  /** Repeatable: client commands use the last; `hub serve` accepts all. */
  token?: string[];
  /** ONNX Runtime's execution provider: cpu (default) or cuda (falls back to the CPU with a warning). */
  device?: string;
}

/** What the CLI needs of a Hub client (by default @lowrank/hub, loaded on first use). */
export interface HubClient {
  resolveHubConfig: typeof resolveHubConfig;
  resolveLocation: typeof resolveLocation;
  pullRepo: typeof pullRepo;
  pushAdapter: typeof pushAdapter;
}

/** Where commands send warnings and progress (stderr by default). */
export const LOGGER: InjectionToken<Logger> = Symbol("lowrank.cli.logger");
/** The Hub client, resolved once per run. */
export const HUB_CLIENT: InjectionToken<() => Promise<HubClient>> = Symbol("lowrank.cli.hubClient");
/** Registers backends on a fresh registry: the built-in ones, then plugins. */
export const BACKEND_SETUP: InjectionToken<(registry: BackendRegistry, globals: GlobalOptions) => Promise<void>> = Symbol("lowrank.cli.backendSetup");

/** What a command needs from the outside world: a logger, stdout, the backend registry and the Hub. */
export interface CliContext {
  logger: Logger;
  out: (text: string) => void;
  registry(): Promise<BackendRegistry>;
  /** The Hub client (swappable through the container's HUB_CLIENT). */
  hubClient(): Promise<HubClient>;
  /** The Hub settings from --hub-url / HF_ENDPOINT, --token / HF_TOKEN and the HF cache variables. */
  hub(): Promise<HubConfig>;
  /** A model or adapter argument as a local folder: a path as it is, a Hub id pulled into the cache. */
  local(arg: string): Promise<string>;
}

/**
 * The built-in backends, loaded only when first resolved, then third-party ones from
 * `--plugin <module>` or `LOWRANK_PLUGINS` (comma-separated).
 */
async function defaultBackendSetup(registry: BackendRegistry, globals: GlobalOptions): Promise<void> {
  registry.register("tfjs", async () => new (await import("@lowrank/backend-tfjs")).TfjsBackend(), { priority: 10 });
  const device = choiceFlag("--device", globals.device, ["cpu", "cuda"] as const);
  registry.register("onnx", async () => new (await import("@lowrank/backend-onnx")).OnnxBackend(device ? { executionProvider: device } : {}), { priority: 20 });
  const plugins = [
    ...(process.env.LOWRANK_PLUGINS ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean),
    ...(globals.plugin ?? []),
  ];
  for (const plugin of plugins) await loadBackendPlugin(plugin, registry);
}

/**
 * The CLI's composition root. A child of `container` (the global tsyringe container by default)
 * holds the logger, the Hub client and the backend setup; whatever `container` already registers
 * under LOGGER, HUB_CLIENT or BACKEND_SETUP is used instead, so a plugin host or a test swaps one
 * in. Backends come only through the registry.
 */
export function createContext(globals: () => GlobalOptions, container: DependencyContainer = rootContainer): CliContext {
  const scope = container.createChildContainer();
  if (!scope.isRegistered(LOGGER, true)) scope.register(LOGGER, { useValue: stderrLogger });
  if (!scope.isRegistered(HUB_CLIENT, true)) scope.register(HUB_CLIENT, { useValue: () => import("@lowrank/hub") });
  if (!scope.isRegistered(BACKEND_SETUP, true)) scope.register(BACKEND_SETUP, { useValue: defaultBackendSetup });
  const logger = scope.resolve(LOGGER);
  let client: Promise<HubClient> | undefined;
  let registry: Promise<BackendRegistry> | undefined;
  const hubClient = () => (client ??= scope.resolve(HUB_CLIENT)());
  const hub = async () => (await hubClient()).resolveHubConfig({ hubUrl: globals().hubUrl, token: globals().token?.at(-1) });
  return {
    logger,
    hubClient,
    hub,
    local: async (arg) => (await hubClient()).resolveLocation(arg, await hub()),
    out: (text) => void process.stdout.write(text.endsWith("\n") ? text : `${text}\n`),
    registry: () => {
      registry ??= (async () => {
        const r = new BackendRegistry({ logger, container: scope });
        await scope.resolve(BACKEND_SETUP)(r, globals());
        return r;
      })();
      return registry;
    },
  };
}
