import * as ort from "onnxruntime-node";
import { encodeModel, floatValueInfo, newNode, type ModelProto } from "../onnx/onnx-codec.js";
import type { ExecutionProvider } from "./ort-session.js";

/** Whether an execution provider runs here, and why not when it does not. */
export interface ProviderStatus {
  provider: ExecutionProvider;
  available: boolean;
  reason: string;
}

/**
 * The one command that installs onnxruntime-node's CUDA provider (CUDA 12) on a machine with a GPU and
 * internet: it reruns the package's own install script, which this workspace skips (pnpm's
 * allowBuilds), asking it for the CUDA binaries. `scripts/install-ort-cuda.mjs` runs it.
 */
export const CUDA_PROVIDER_INSTALL_COMMAND = "node scripts/install-ort-cuda.mjs";

function identityModel(): Uint8Array {
  const model = {
    ir_version: 8,
    opset_import: [{ domain: "", version: 17 }],
    graph: {
      name: "probe",
      node: [newNode({ name: "id", op_type: "Identity", input: ["x"], output: ["y"] })],
      initializer: [],
      input: [floatValueInfo("x", [1])],
      output: [floatValueInfo("y", [1])],
    },
  } as unknown as ModelProto;
  return encodeModel(model);
}

/** Tries each execution provider lowrank asks ONNX Runtime for on a one-node model. */
export async function probeExecutionProviders(): Promise<ProviderStatus[]> {
  const bytes = identityModel();
  const statuses: ProviderStatus[] = [];
  for (const provider of ["cuda", "cpu"] as const) {
    try {
      const session = await ort.InferenceSession.create(bytes, { executionProviders: [provider], logSeverityLevel: 4 });
      await session.release();
      statuses.push({ provider, available: true, reason: "a session runs on it" });
    } catch (error) {
      statuses.push({ provider, available: false, reason: (error as Error).message.split("\n")[0] ?? "unknown" });
    }
  }
  return statuses;
}

/** The version of onnxruntime-node in use. */
export function onnxRuntimeVersion(): string | undefined {
  return ort.env.versions?.common;
}
