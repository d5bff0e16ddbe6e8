import * as ort from "onnxruntime-node";
import { LowrankError, silentLogger, type Logger } from "@lowrank/core";
import { readModelBytes, withTempModelFile } from "../platform/files.js";
import { decodeModel, encodeModel, EXTERNAL_LOCATION, type ModelProto } from "../onnx/onnx-codec.js";

// ONNX Runtime's native logger writes colour-coded lines to stderr (e.g. when the CUDA provider is
// missing). Every failure also reaches us as an exception, which lowrank reports in one line.
ort.env.logLevel = "fatal";

/**
 * Execution providers lowrank asks ONNX Runtime for: "cuda" (onnxruntime-node) or "webgpu"
 * (onnxruntime-web) when asked for and available, else "cpu" (WebAssembly in the browser).
 */
export type ExecutionProvider = "cuda" | "webgpu" | "cpu";

export interface SessionOptions {
  /** "cuda" / "webgpu" try that provider and fall back to the CPU with the reason reported. Default "cpu". */
  executionProvider?: ExecutionProvider;
  /** Threads for one operator (default 2, the best measured on 2 cores). */
  threads?: number;
  logger?: Logger;
  /**
   * ONNX Runtime's memory pattern (default on): it plans one block for all of a run's tensors of a
   * shape. Training graphs turn it off: their peak is then the tensors alive at once, not their sum
   * (peak RSS of LoRA on GPT-2 small at 4 × 128: 2.17 → 1.72 GB, step time unchanged).
   */
  memoryPattern?: boolean;
  /**
   * ONNX Runtime's pre-packing of constant weights for its matrix kernels (default on): each kernel
   * that reads a weight keeps a packed copy of its own. Training graphs turn it off: a frozen weight
   * read forward and backward would be held three times (peak RSS of LoRA on GPT-2 small at 4 × 128:
   * 1.65 → 1.02 GB) for about 10% more time per step (1.40 → 1.55 s), packing on the fly.
   */
  prepacking?: boolean;
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
    enableMemPattern: options.memoryPattern ?? true,
    // Errors only: ONNX Runtime's warnings (unused initializers, …) are not the user's business.
    logSeverityLevel: 3,
    ...(options.prepacking === false ? { extra: { session: { disable_prepacking: "1" } } } : {}),
  };
  const open = (providers: string[]) =>
    typeof model === "string"
      ? ort.InferenceSession.create(model, { ...base, executionProviders: providers })
      : ort.InferenceSession.create(model, { ...base, executionProviders: providers });
  const wanted = options.executionProvider ?? "cpu";
  if (wanted !== "cpu") {
    try {
      return { session: await open([wanted]), provider: wanted, reason: "requested" };
    } catch (error) {
      const reason = `${wanted === "cuda" ? "CUDA" : "WebGPU"} unavailable (${(error as Error).message.split("\n")[0]})`;
      logger.warn(`ONNX Runtime: ${reason}; using the CPU`);
      try {
        return { session: await open(["cpu"]), provider: "cpu", reason };
      } catch (cpuError) {
        throw await loadFailure(model, cpuError);
      }
    }
  }
  try {
    return { session: await open(["cpu"]), provider: "cpu", reason: "requested" };
  } catch (error) {
    throw await loadFailure(model, error);
  }
}

/**
 * Why ONNX Runtime could not load a model, in one line: our own decoder's diagnosis when the bytes
 * are not an ONNX model at all (empty, truncated, another format), else ONNX Runtime's first line.
 */
async function loadFailure(model: string | Uint8Array, error: unknown): Promise<LowrankError> {
  const label = typeof model === "string" ? model : "model.onnx";
  const ortLine = (error as Error).message.split("\n")[0];
  try {
    const bytes = typeof model === "string" ? await readModelBytes(model) : model;
    decodeModel(bytes, label, { checkRoundTrip: false });
  } catch (diagnosis) {
    if (diagnosis instanceof LowrankError) return diagnosis;
  }
  return new LowrankError("CHECKPOINT_INVALID", `${label}: ONNX Runtime cannot load the model: ${ortLine}`);
}

/**
 * int64 ids [b][s] as an ORT tensor.
 * @throws LowrankError USAGE for no rows.
 */
export function idsTensor(rows: number[][]): ort.Tensor {
  const first = rows[0];
  if (!first) throw new LowrankError("USAGE", "ids are empty (no rows)");
  const flat = BigInt64Array.from(rows.flat().map((x) => BigInt(x)));
  return new ort.Tensor("int64", flat, [rows.length, first.length]);
}

/**
 * An ORT session for an edited graph. A graph whose weights live in external data files is written
 * to a temporary file beside the original, so the relative data paths resolve; it is removed once
 * the session has loaded.
 */
export async function createSessionForModel(model: ModelProto, modelDir: string, options: SessionOptions = {}): Promise<CreatedSession> {
  const bytes = encodeModel(model);
  if (!model.graph.initializer.some((t) => t.data_location === EXTERNAL_LOCATION)) return createOrtSession(bytes, options);
  return withTempModelFile(modelDir, bytes, (file) => createOrtSession(file, options));
}
