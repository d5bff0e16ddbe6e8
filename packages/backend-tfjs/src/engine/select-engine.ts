import * as tf from "@tensorflow/tfjs";
import { LowrankError, silentLogger, type Logger } from "@lowrank/core";

/** TensorFlow.js engines, best first. */
export const ENGINES = ["tfjs-node-gpu", "tfjs-node", "wasm", "cpu"] as const;
export type EngineName = (typeof ENGINES)[number];

export interface EngineChoice {
  engine: EngineName;
  /** The tfjs backend name now active ("tensorflow", "wasm", "cpu"). */
  backend: string;
  /** Why this engine: forced, or the reasons the better ones were skipped. */
  reason: string;
}

let current: Promise<EngineChoice> | undefined;

async function tryEngine(engine: EngineName): Promise<string> {
  switch (engine) {
    case "tfjs-node-gpu":
    case "tfjs-node": {
      // Optional peer dependencies: absent on most machines (their install downloads libtensorflow).
      const specifier = engine === "tfjs-node-gpu" ? "@tensorflow/tfjs-node-gpu" : "@tensorflow/tfjs-node";
      await import(/* @vite-ignore */ specifier);
      if (!(await tf.setBackend("tensorflow"))) throw new Error(`${specifier} loaded but its "tensorflow" backend did not initialise`);
      return "tensorflow";
    }
    case "wasm": {
      await import("@tensorflow/tfjs-backend-wasm");
      if (!(await tf.setBackend("wasm"))) throw new Error("the wasm backend did not initialise");
      return "wasm";
    }
    case "cpu":
      if (!(await tf.setBackend("cpu"))) throw new Error("the cpu backend did not initialise");
      return "cpu";
  }
}

function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split("\n")[0]!.replace(/^Cannot find (package|module) '([^']+)'.*/, "$2 is not installed");
}

/**
 * Chooses the TensorFlow.js engine once per process: tfjs-node-gpu when installed and loadable,
 * else tfjs-node, else the WebAssembly backend, else the pure-JS cpu backend. `LOWRANK_TFJS_ENGINE`
 * (or `force`) picks one; a forced engine that fails is an error, not a silent fallback.
 * @throws LowrankError BACKEND_UNAVAILABLE
 */
export function selectEngine(options: { force?: string; logger?: Logger } = {}): Promise<EngineChoice> {
  current ??= choose(options.force ?? process.env.LOWRANK_TFJS_ENGINE, options.logger ?? silentLogger);
  return current;
}

async function choose(force: string | undefined, logger: Logger): Promise<EngineChoice> {
  if (force !== undefined && force !== "") {
    if (!(ENGINES as readonly string[]).includes(force)) {
      throw new LowrankError("USAGE", `LOWRANK_TFJS_ENGINE / --engine is ${JSON.stringify(force)}; use one of ${ENGINES.join(", ")}`);
    }
    try {
      const backend = await tryEngine(force as EngineName);
      await tf.ready();
      return { engine: force as EngineName, backend, reason: "forced" };
    } catch (error) {
      throw new LowrankError("BACKEND_UNAVAILABLE", `TensorFlow.js engine ${force} was requested but cannot run here: ${firstLine(error)}`, { usage: false });
    }
  }
  const skipped: string[] = [];
  for (const engine of ENGINES) {
    try {
      const backend = await tryEngine(engine);
      await tf.ready();
      const reason = skipped.length === 0 ? "best available" : `fell back: ${skipped.join("; ")}`;
      if (skipped.length > 0 && engine !== "wasm") logger.warn(`TensorFlow.js is using ${engine} (${reason})`);
      return { engine, backend, reason };
    } catch (error) {
      skipped.push(`${engine}: ${firstLine(error)}`);
    }
  }
  throw new LowrankError("BACKEND_UNAVAILABLE", `no TensorFlow.js engine can run here (${skipped.join("; ")})`);
}
