import * as ort from "onnxruntime-web";

export interface WebRuntimeOptions {
  /**
   * Where onnxruntime-web's files are served (a URL prefix ending in "/", e.g. "/ort/"): its
   * ort-wasm-simd-threaded.wasm and .mjs loader. Without it they are looked for beside the script.
   */
  wasmPaths?: string;
  /** WebAssembly threads (default: up to 4 when the page is cross-origin isolated, else 1). */
  threads?: number;
}

export interface WebRuntime {
  /** Threads ONNX Runtime will use (more than 1 only on cross-origin-isolated pages). */
  threads: number;
  /** Whether the browser has a WebGPU adapter (then `executionProvider: "webgpu"` is worth asking for). */
  webgpu: boolean;
}

/**
 * Points onnxruntime-web at its files and sets its threads, before the first session is created;
 * tells whether WebGPU is there.
 */
export async function configureWebRuntime(options: WebRuntimeOptions = {}): Promise<WebRuntime> {
  if (options.wasmPaths !== undefined) ort.env.wasm.wasmPaths = options.wasmPaths;
  const isolated = (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true;
  const cores = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency ?? 1;
  const threads = isolated ? (options.threads ?? Math.max(1, Math.min(4, Math.floor(cores / 2)))) : 1;
  ort.env.wasm.numThreads = threads;
  const gpu = (globalThis as { navigator?: { gpu?: { requestAdapter(): Promise<unknown> } } }).navigator?.gpu;
  let webgpu = false;
  try {
    webgpu = gpu !== undefined && (await gpu.requestAdapter()) != null;
  } catch {
    webgpu = false;
  }
  return { threads, webgpu };
}
