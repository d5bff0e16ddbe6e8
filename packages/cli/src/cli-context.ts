import { BackendRegistry, loadBackendPlugin, stderrLogger, type Logger } from "@lowrank/core";

/** Options every command shares. */
export interface GlobalOptions {
  debug?: boolean;
  plugin?: string[];
}

/** What a command needs from the outside world: a logger, stdout, and the backend registry. */
export interface CliContext {
  logger: Logger;
  out: (text: string) => void;
  registry(): Promise<BackendRegistry>;
}

/**
 * Builds the context. Backends come only through the registry: built-in ones are registered here
 * (as packages land), third-party ones from `--plugin <module>` or `LOWRANK_PLUGINS` (comma-separated).
 */
export function createContext(globals: () => GlobalOptions): CliContext {
  let registry: Promise<BackendRegistry> | undefined;
  const logger = stderrLogger;
  return {
    logger,
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
