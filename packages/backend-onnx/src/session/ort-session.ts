import * as ort from "onnxruntime-node";
import { LowrankError, silentLogger, type Logger } from "@lowrank/core";

/** Execution providers lowrank asks ONNX Runtime for, best first. */
export type ExecutionProvider = "cuda" | "cpu";

export interface SessionOptions {
  /** "cuda" tries the CUDA provider and falls back to CPU with the reason reported. Default "cpu". */
  executionProvider?: ExecutionProvider;
  /** Threads for one operator (default 2, the best measured on 2 cores). */
  threads?: number;
  logger?: Logger;
}

export interface CreatedSession {
  session: ort.InferenceSession;
  provider: ExecutionProvider;
  /** Why the provider is what it is (requested, or the CUDA failure). */
  reason: string;
}

/**
 * An ORT session on the requested execution provider, falling back from CUDA to CPU with the
 * reason (onnxruntime-node's CUDA provider needs libraries its install script downloads).
 */
export async function createOrtSession(model: string | Uint8Array, options: SessionOptions = {}): Promise<CreatedSession> {
  const logger = options.logger ?? silentLogger;
  const base: ort.InferenceSession.SessionOptions = {
    intraOpNumThreads: options.threads ?? 2,
    interOpNumThreads: 1,
    graphOptimizationLevel: "all",
    // Errors only: ONNX Runtime's warnings (unused initializers, …) are not the user's business.
    logSeverityLevel: 3,
  };
  const open = (providers: string[]) =>
    typeof model === "string" ? ort.InferenceSession.create(model, { ...base, executionProviders: providers }) : ort.InferenceSession.create(model, { ...base, executionProviders: providers });
  if ((options.executionProvider ?? "cpu") === "cuda") {
    try {
      return { session: await open(["cuda"]), provider: "cuda", reason: "requested" };
    } catch (error) {
      const reason = `CUDA unavailable (${(error as Error).message.split("\n")[0]})`;
      logger.warn(`ONNX Runtime: ${reason}; using the CPU`);
      try {
        return { session: await open(["cpu"]), provider: "cpu", reason };
      } catch (cpuError) {
        throw new LowrankError("CHECKPOINT_INVALID", `ONNX Runtime cannot load the model: ${(cpuError as Error).message.split("\n")[0]}`);
      }
    }
  }
  try {
    return { session: await open(["cpu"]), provider: "cpu", reason: "requested" };
  } catch (error) {
    throw new LowrankError("CHECKPOINT_INVALID", `ONNX Runtime cannot load the model: ${(error as Error).message.split("\n")[0]}`);
  }
}

/** int64 ids [b][s] as an ORT tensor. */
export function idsTensor(rows: number[][]): ort.Tensor {
  const flat = BigInt64Array.from(rows.flat().map((x) => BigInt(x)));
  return new ort.Tensor("int64", flat, [rows.length, rows[0].length]);
}
