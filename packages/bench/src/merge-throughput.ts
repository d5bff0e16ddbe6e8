import { copyFile, mkdir, open, rename, rm, stat } from "node:fs/promises";
import path from "node:path";
import { bindAdapter, Checkpoint, describeModel, mergeCheckpoint, mergeLora, type LoraAdapter, type LoraFactors } from "@lowrank/core";
import { spread, type Spread } from "./stats.js";

export interface MergeThroughput {
  model: string;
  adapter: string;
  checkpoint_bytes: number;
  adapted_bytes: number;
  repeats: number;
  /** In memory: every adapted matrix copied, and merged (W += s·B·A), over the same bytes. */
  kernel: { copy_seconds: Spread; merge_seconds: Spread; copy_gb_per_s: number; merge_gb_per_s: number };
  /** Folder to folder: a plain copy (read, write, fsync, rename), fs.copyFile, and mergeCheckpoint. */
  file: { copy_seconds: Spread; copyfile_seconds: Spread; merge_seconds: Spread; copy_gb_per_s: number; copyfile_gb_per_s: number; merge_gb_per_s: number };
}

async function repeat(repeats: number, fn: () => Promise<void>): Promise<Spread> {
  await fn();
  const seconds: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const start = performance.now();
    await fn();
    seconds.push((performance.now() - start) / 1000);
  }
  return spread(seconds);
}

/** Reads, writes, fsyncs and renames: what any safe writer of the checkpoint must at least do. */
async function plainCopy(source: string, target: string): Promise<void> {
  const input = await open(source, "r");
  const output = await open(`${target}.tmp`, "w");
  try {
    const chunk = Buffer.allocUnsafe(8 << 20);
    for (let position = 0; ; ) {
      const { bytesRead } = await input.read(chunk, 0, chunk.length, position);
      if (bytesRead === 0) break;
      await output.write(chunk, 0, bytesRead);
      position += bytesRead;
    }
    await output.sync();
  } finally {
    await output.close();
    await input.close();
  }
  await rename(`${target}.tmp`, target);
}

/**
 * Merge speed against copy speed of the same bytes, in the same run: the in-memory kernel over the
 * adapted matrices, and the whole checkpoint folder to folder.
 */
export async function measureMergeThroughput(params: {
  baseDir: string;
  adapter: LoraAdapter;
  workDir: string;
  repeats: number;
  model: string;
  adapterLabel: string;
}): Promise<MergeThroughput> {
  const { baseDir, adapter, workDir, repeats } = params;
  const checkpoint = await Checkpoint.open(baseDir);
  const matrices: { weight: Float32Array; scratch: Float32Array; factors: LoraFactors }[] = [];
  try {
    const bound = bindAdapter(adapter, describeModel(checkpoint.config, checkpoint.tensorInfo()));
    for (const module of bound.modules) {
      const weightKey = module.plan.module.weightKey;
      if (!weightKey) continue;
      const weight = await checkpoint.readFloat32(weightKey);
      matrices.push({ weight, scratch: new Float32Array(weight.length), factors: module.factors });
    }
  } finally {
    await checkpoint.close();
  }
  const adaptedBytes = matrices.reduce((sum, m) => sum + m.weight.byteLength, 0);
  const copyKernel = await repeat(repeats, async () => {
    for (const m of matrices) m.scratch.set(m.weight);
  });
  const mergeKernel = await repeat(repeats, async () => {
    for (const m of matrices) {
      m.scratch.set(m.weight);
      mergeLora(m.scratch, m.factors);
    }
  });
  // The merge alone: (copy + merge) − copy, per repeat's median.
  const mergeOnly = { ...mergeKernel, median: Math.max(mergeKernel.median - copyKernel.median, 1e-9) };

  const source = path.join(baseDir, "model.safetensors");
  const checkpointBytes = (await stat(source)).size;
  let n = 0;
  const scratchDir = async (): Promise<string> => {
    const dir = path.join(workDir, `run-${n++}`);
    await mkdir(dir, { recursive: true });
    return dir;
  };
  const copySeconds = await repeat(repeats, async () => {
    const dir = await scratchDir();
    await plainCopy(source, path.join(dir, "model.safetensors"));
    await rm(dir, { recursive: true });
  });
  const copyFileSeconds = await repeat(repeats, async () => {
    const dir = await scratchDir();
    await copyFile(source, path.join(dir, "model.safetensors"));
    await rm(dir, { recursive: true });
  });
  const mergeSeconds = await repeat(repeats, async () => {
    const dir = path.join(workDir, `merged-${n++}`);
    await mergeCheckpoint({ baseDir, adapter, outDir: dir });
    await rm(dir, { recursive: true });
  });
  const gbps = (bytes: number, s: Spread): number => bytes / s.median / 1e9;
  return {
    model: params.model,
    adapter: params.adapterLabel,
    checkpoint_bytes: checkpointBytes,
    adapted_bytes: adaptedBytes,
    repeats,
    kernel: {
      copy_seconds: copyKernel,
      merge_seconds: mergeOnly,
      copy_gb_per_s: gbps(adaptedBytes, copyKernel),
      merge_gb_per_s: gbps(adaptedBytes, mergeOnly),
    },
    file: {
      copy_seconds: copySeconds,
      copyfile_seconds: copyFileSeconds,
      merge_seconds: mergeSeconds,
      copy_gb_per_s: gbps(checkpointBytes, copySeconds),
      copyfile_gb_per_s: gbps(checkpointBytes, copyFileSeconds),
      merge_gb_per_s: gbps(checkpointBytes, mergeSeconds),
    },
  };
}
