import os from "node:os";
import * as tf from "@tensorflow/tfjs";
import * as ort from "onnxruntime-node";
import { selectEngine } from "@lowrank/backend-tfjs";

/** The machine the numbers were measured on. */
export function machineInfo(): Record<string, unknown> {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model ?? "unknown",
    cores: cpus.length,
    memory_gb: Math.round(os.totalmem() / 2 ** 30),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
  };
}

/** Versions of lowrank (as the caller reports it: `lowrank bench` passes its own) and the runtimes it measured. */
export async function versionInfo(lowrankVersion: string): Promise<Record<string, unknown>> {
  const engine = await selectEngine();
  return {
    lowrank: lowrankVersion,
    node: process.versions.node,
    tfjs: tf.version.tfjs,
    tfjs_engine: engine.engine,
    tfjs_engine_reason: engine.reason,
    onnxruntime_node: ort.env.versions.node ?? ort.env.versions.common,
  };
}
