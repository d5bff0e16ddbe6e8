import { BackendRegistry, loadBackendPlugin, stderrLogger, type Logger } from "@lowrank/core";

/** Options every command shares. */
export interface GlobalOptions {
  debug?: boolean;
  plugin?: string[];
  hubUrl?: string;
  /** Repeatable: client commands use the last; `hub serve` accepts all. */
  token?: string[];
}

/** What a command needs from the outside world: a logger, stdout, and the backend registry. */
export interface CliContext {
  logger: Logger;
  out: (text: string) => void;
  registry(): Promise<BackendRegistry>;
  /** The Hub settings from --hub-url / HF_ENDPOINT, --token / HF_TOKEN and the HF cache variables. */
  hub(): Promise<import("@lowrank/hub").HubConfig>;
  /** A model or adapter argument as a local folder: a path as it is, a Hub id pulled into the cache. */
  local(arg: string): Promise<string>;
}

/**
 * Builds the context. Backends come only through the registry: built-in ones are registered here
 * (as packages land), third-party ones from `--plugin <module>` or `LOWRANK_PLUGINS` (comma-separated).
 */
export function createContext(globals: () => GlobalOptions): CliContext {
  let registry: Promise<BackendRegistry> | undefined;
  const logger = stderrLogger;
  const hub = async () => {
    const { resolveHubConfig } = await import("@lowrank/hub");
    return resolveHubConfig({ hubUrl: globals().hubUrl, token: globals().token?.at(-1) });
  };
  return {
    logger,
    hub,
    local: async (arg) => (await import("@lowrank/hub")).resolveLocation(arg, await hub()),
    out: (text) => void process.stdout.write(text.endsWith("\n") ? text : `${text}\n`),
    registry: () => {
      registry ??= (async () => {
        const r = new BackendRegistry({ logger });
        // Built-in backends, loaded only when first resolved.
        r.register("tfjs", async () => new (await import("@lowrank/backend-tfjs")).TfjsBackend(), { priority: 10 });
        r.register("onnx", async () => new (await import("@lowrank/backend-onnx")).OnnxBackend(), { priority: 5 });
        const plugins = [
          ...(process.env.LOWRANK_PLUGINS ?? "").split(",").map((s) => s.trim()).filter(Boolean),
          ...(globals().plugin ?? []),
        ];
        for (const plugin of plugins) await loadBackendPlugin(plugin, r);
        return r;
      })();
      return registry;
    },
  };
}
