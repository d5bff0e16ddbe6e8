import type { CliContext } from "../cli-context.js";

/** What `lowrank doctor` found: the runtimes, their engines and execution providers, and what to install. */
export interface DoctorReport {
  node: string;
  platform: string;
  onnxruntime: { version: string | undefined; providers: { provider: string; available: boolean; reason: string }[]; cudaInstall: string };
  tfjs: { engine: string | null; reason: string };
}

/**
 * `lowrank doctor`: which engines and execution providers run on this machine — ONNX Runtime's CPU and
 * CUDA providers (tried on a one-node model), TensorFlow.js's engine (tfjs-node-gpu → tfjs-node →
 * wasm → cpu) — and the one command that installs the CUDA provider when it is missing.
 */
export async function doctorCommand(ctx: CliContext, options: { json?: boolean }): Promise<void> {
  const onnx = await import("@lowrank/backend-onnx");
  const tfjs = await import("@lowrank/backend-tfjs");
  let engine: { engine: string | null; reason: string };
  try {
    const choice = await tfjs.selectEngine();
    engine = { engine: choice.engine, reason: choice.reason };
  } catch (error) {
    engine = { engine: null, reason: (error as Error).message };
  }
  const report: DoctorReport = {
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    onnxruntime: { version: onnx.onnxRuntimeVersion(), providers: await onnx.probeExecutionProviders(), cudaInstall: onnx.CUDA_PROVIDER_INSTALL_COMMAND },
    tfjs: engine,
  };
  if (options.json) {
    ctx.out(JSON.stringify(report, null, 2));
    return;
  }
  ctx.out(`Node ${report.node} on ${report.platform}`);
  ctx.out(`ONNX Runtime ${report.onnxruntime.version ?? "?"}:`);
  for (const p of report.onnxruntime.providers) ctx.out(`  ${p.provider.padEnd(5)} ${p.available ? "available" : `unavailable (${p.reason})`}`);
  if (!report.onnxruntime.providers.find((p) => p.provider === "cuda")?.available) {
    ctx.out(`  to use an NVIDIA GPU (CUDA 12), run once with internet access: ${report.onnxruntime.cudaInstall}; then lowrank --device cuda …`);
  }
  ctx.out(`TensorFlow.js: ${report.tfjs.engine ?? "no engine"} (${report.tfjs.reason})`);
}
