#!/usr/bin/env node
// Merge throughput: how fast lowrank merges an all-linear LoRA adapter into a GPT-2-small-shaped
// checkpoint, against a plain copy of the same bytes measured in the same run.
//
//   node bench/merge-throughput.mjs [--quick] [--json out.json] [--repeats N]
//
// Two views:
//  1. kernel: merging ΔW = s·B·A into every weight matrix in memory vs Float32Array.set() of the same
//     matrices (both read and write every byte once);
//  2. file: `mergeCheckpoint` folder → folder (read, merge, write, fsync, rename) vs a plain copy of
//     the checkpoint through user space with the same steps (read, write, fsync, rename), and vs
//     fs.copyFile (which the kernel may do without touching user space).
// Each figure is the median of the repeats after one warm-up, with min–max shown.
import { copyFile, mkdtemp, open, rename, rm, mkdir, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {
  adapterKey, createLoraConfig, float32Tensor, mergeCheckpoint, mergeLora, SeededRandom, writeSafetensors,
} from "@lowrank/core";

const args = process.argv.slice(2);
const quick = args.includes("--quick");
const jsonOut = args.includes("--json") ? args[args.indexOf("--json") + 1] : undefined;
const repeats = args.includes("--repeats") ? Number(args[args.indexOf("--repeats") + 1]) : quick ? 3 : 5;

// GPT-2 small: 12 layers, 768 wide, vocab 50257. --quick: 4 layers, 512 wide, vocab 8192.
const shape = quick ? { layers: 4, hidden: 512, vocab: 8192, positions: 512 } : { layers: 12, hidden: 768, vocab: 50257, positions: 1024 };
const rank = 8;

function randomArray(n, rng, scale) {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (rng.next() * 2 - 1) * scale;
  return a;
}

function buildCheckpoint() {
  const rng = new SeededRandom(1);
  const { layers, hidden: h, vocab, positions } = shape;
  const tensors = new Map();
  const put = (name, dims) => tensors.set(name, float32Tensor(randomArray(dims.reduce((a, b) => a * b, 1), rng, 0.02), dims));
  put("transformer.wte.weight", [vocab, h]);
  put("transformer.wpe.weight", [positions, h]);
  const linear = [];
  for (let i = 0; i < layers; i++) {
    const p = `transformer.h.${i}`;
    for (const ln of ["ln_1", "ln_2"]) { put(`${p}.${ln}.weight`, [h]); put(`${p}.${ln}.bias`, [h]); }
    for (const [name, inF, outF] of [["attn.c_attn", h, 3 * h], ["attn.c_proj", h, h], ["mlp.c_fc", h, 4 * h], ["mlp.c_proj", 4 * h, h]]) {
      put(`${p}.${name}.weight`, [inF, outF]);
      put(`${p}.${name}.bias`, [outF]);
      linear.push({ module: `${p}.${name}`, inF, outF });
    }
  }
  put("transformer.ln_f.weight", [h]);
  put("transformer.ln_f.bias", [h]);
  const adapterTensors = new Map();
  for (const { module, inF, outF } of linear) {
    adapterTensors.set(adapterKey(module, "lora_A"), float32Tensor(randomArray(rank * inF, rng, 0.05), [rank, inF]));
    adapterTensors.set(adapterKey(module, "lora_B"), float32Tensor(randomArray(outF * rank, rng, 0.05), [outF, rank]));
  }
  const config = {
    model_type: "gpt2", architectures: ["GPT2LMHeadModel"], n_layer: layers, n_embd: h, n_head: 12, vocab_size: vocab, n_positions: positions,
  };
  const adapter = { config: createLoraConfig({ r: rank, lora_alpha: 16, target_modules: "all-linear", fan_in_fan_out: true }), tensors: adapterTensors };
  return { tensors, linear, config, adapter };
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function measure(fn) {
  await fn();
  const times = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    await fn();
    times.push((performance.now() - t0) / 1000);
  }
  return { median: median(times), min: Math.min(...times), max: Math.max(...times) };
}

const { tensors, linear, config, adapter } = buildCheckpoint();
const dir = await mkdtemp(path.join(os.tmpdir(), "lowrank-bench-merge-"));
try {
  const baseDir = path.join(dir, "base");
  await mkdir(baseDir);
  await writeFile(path.join(baseDir, "config.json"), JSON.stringify(config));
  await writeSafetensors(path.join(baseDir, "model.safetensors"), tensors, { format: "pt" });
  let totalBytes = 0;
  for (const t of tensors.values()) totalBytes += t.data.byteLength;

  // 1. In-memory kernel vs copy over the adapted matrices.
  const weights = linear.map(({ module, inF, outF }) => {
    const t = tensors.get(`${module}.weight`);
    return {
      values: new Float32Array(t.data.buffer, t.data.byteOffset, inF * outF),
      scratch: new Float32Array(inF * outF),
      factors: {
        A: new Float32Array(adapter.tensors.get(adapterKey(module, "lora_A")).data.buffer),
        B: new Float32Array(adapter.tensors.get(adapterKey(module, "lora_B")).data.buffer),
        r: rank, inFeatures: inF, outFeatures: outF, scaling: 2, layout: "in_out",
      },
    };
  });
  const matrixBytes = weights.reduce((s, w) => s + w.values.byteLength, 0);
  const copyKernel = await measure(async () => { for (const w of weights) w.scratch.set(w.values); });
  const mergeKernel = await measure(async () => { for (const w of weights) { w.scratch.set(w.values); mergeLora(w.scratch, w.factors); } });
  // Merge time alone = (copy + merge) − copy; reported both ways.
  const mergeOnly = Math.max(mergeKernel.median - copyKernel.median, 1e-9);

  // 2. Whole checkpoint, folder to folder, vs copying the file.
  let n = 0;
  const plainCopy = async (src, dst) => {
    const input = await open(src, "r");
    const output = await open(`${dst}.tmp`, "w");
    const chunk = Buffer.allocUnsafe(8 << 20);
    for (let pos = 0; ; ) {
      const { bytesRead } = await input.read(chunk, 0, chunk.length, pos);
      if (bytesRead === 0) break;
      await output.write(chunk, 0, bytesRead);
      pos += bytesRead;
    }
    await output.sync();
    await output.close();
    await input.close();
    await rename(`${dst}.tmp`, dst);
  };
  const streamCopy = await measure(async () => {
    const out = path.join(dir, `stream-${n++}`);
    await mkdir(out);
    await plainCopy(path.join(baseDir, "model.safetensors"), path.join(out, "model.safetensors"));
    await rm(out, { recursive: true });
  });
  const fileCopy = await measure(async () => {
    const out = path.join(dir, `copy-${n++}`);
    await mkdir(out);
    await copyFile(path.join(baseDir, "model.safetensors"), path.join(out, "model.safetensors"));
    await rm(out, { recursive: true });
  });
  const fileMerge = await measure(async () => {
    const out = path.join(dir, `merged-${n++}`);
    await mergeCheckpoint({ baseDir, adapter, outDir: out });
    await rm(out, { recursive: true });
  });

  const gb = (bytes, s) => bytes / s / 1e9;
  const result = {
    model: quick ? "GPT-2-shaped, 4 layers × 512 (quick)" : "GPT-2 small shape (12 layers × 768, vocab 50257)",
    rank, adapted_matrices: linear.length, checkpoint_bytes: totalBytes, adapted_bytes: matrixBytes, repeats,
    kernel: {
      copy_seconds: copyKernel, merge_plus_copy_seconds: mergeKernel,
      copy_gb_per_s: gb(matrixBytes, copyKernel.median), merge_gb_per_s: gb(matrixBytes, mergeOnly),
      merge_over_copy: mergeOnly / copyKernel.median,
    },
    file: {
      copy_seconds: streamCopy, copyfile_seconds: fileCopy, merge_seconds: fileMerge,
      copy_gb_per_s: gb(totalBytes, streamCopy.median), copyfile_gb_per_s: gb(totalBytes, fileCopy.median),
      merge_gb_per_s: gb(totalBytes, fileMerge.median),
      merge_over_copy: fileMerge.median / streamCopy.median,
    },
  };
  const f = (x) => `${x.median.toFixed(4)} s (${x.min.toFixed(4)}–${x.max.toFixed(4)})`;
  console.log(`merge throughput — ${result.model}, all-linear r=${rank}, ${linear.length} matrices, median of ${repeats}`);
  console.log(`  kernel  copy  ${f(copyKernel)}  ${result.kernel.copy_gb_per_s.toFixed(2)} GB/s`);
  console.log(`  kernel  merge ${mergeOnly.toFixed(4)} s  ${result.kernel.merge_gb_per_s.toFixed(2)} GB/s  (${result.kernel.merge_over_copy.toFixed(2)}× the copy)`);
  console.log(`  file    copy  ${f(streamCopy)}  ${result.file.copy_gb_per_s.toFixed(2)} GB/s  (read, write, fsync, rename)`);
  console.log(`  file    copyFile ${f(fileCopy)}  ${result.file.copyfile_gb_per_s.toFixed(2)} GB/s  (kernel copy, no fsync)`);
  console.log(`  file    merge ${f(fileMerge)}  ${result.file.merge_gb_per_s.toFixed(2)} GB/s  (${result.file.merge_over_copy.toFixed(2)}× the copy)`);
  if (jsonOut) {
    await mkdir(path.dirname(path.resolve(jsonOut)), { recursive: true });
    await writeFile(jsonOut, `${JSON.stringify(result, null, 2)}\n`);
    console.log(`wrote ${jsonOut}`);
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
