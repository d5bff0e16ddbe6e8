import { copyFile, readdir } from "node:fs/promises";
import path from "node:path";
import { bindAdapter, type BoundModule } from "../adapter/bind-adapter.js";
import type { LoraAdapter } from "../adapter/lora-adapter.js";
import { writeDirectoryAtomic, writeFileAtomic } from "../formats/atomic-write.js";
import { Checkpoint, INDEX_FILE } from "../formats/checkpoint.js";
import { fromFloat32, toFloat32, type Tensor } from "../formats/safetensors/dtype.js";
import { SafetensorsWriter } from "../formats/safetensors/write-safetensors.js";
import type { Logger } from "../logger.js";
import { mergeLora, mergeLoraBias } from "../math/merge.js";
import { describeModel } from "../model/describe-model.js";

/** Files of a model folder that are weights (re-written, never copied). */
export const WEIGHT_FILE = /\.(safetensors|bin|pt|pth|onnx|onnx_data|msgpack|h5|gguf)$|^model\.safetensors\.index\.json$/;

/** Copies a model folder's other files (config, tokenizer, generation config, card) — not its weights. */
export async function copyModelFiles(from: string, to: string): Promise<void> {
  for (const entry of await readdir(from, { withFileTypes: true })) {
    if (entry.isFile() && !WEIGHT_FILE.test(entry.name)) await copyFile(path.join(from, entry.name), path.join(to, entry.name));
  }
}

export interface MergeCheckpointParams {
  baseDir: string;
  adapter: LoraAdapter;
  outDir: string;
  /** Refuse non-finite results (PEFT's safe_merge). */
  safe?: boolean;
  logger?: Logger;
  /** Called after each tensor is written (for progress bars). */
  onTensor?: (done: number, total: number) => void;
}

export interface MergeCheckpointResult {
  mergedModules: string[];
  replacedTensors: string[];
  tensorCount: number;
  bytesWritten: number;
}

/**
 * Merges a LoRA adapter into a Hugging Face checkpoint and writes the result as a new checkpoint
 * with the base's key names, dtypes, shard layout and non-weight files (config, tokenizer): PEFT's
 * merge_and_unload + save_pretrained. Tensors stream one at a time, so checkpoints larger than
 * memory work. modules_to_save and trained biases replace the base tensors. Nothing is left at
 * `outDir` if it fails.
 * @throws LowrankError from binding (targets, shapes), MERGE_NOT_FINITE with `safe`.
 */
export async function mergeCheckpoint(params: MergeCheckpointParams): Promise<MergeCheckpointResult> {
  const base = await Checkpoint.open(params.baseDir);
  try {
    const model = describeModel(base.config, base.tensorInfo());
    const bound = bindAdapter(params.adapter, model, { logger: params.logger, label: "adapter" });
    const byWeightKey = new Map<string, BoundModule[]>();
    const byBiasKey = new Map<string, BoundModule>();
    for (const m of bound.modules) {
      const key = m.plan.module.weightKey!;
      byWeightKey.set(key, [...(byWeightKey.get(key) ?? []), m]);
      if (m.factors.loraBias) {
        if (!m.plan.module.biasKey) params.logger?.warn(`adapter: module "${m.plan.name}" has lora_B.bias but the base layer has no bias; it is dropped`);
        else byBiasKey.set(m.plan.module.biasKey, m);
      }
      if (m.plan.module.tiedTo)
        params.logger?.warn(`adapter: "${m.plan.name}" shares its weight with "${m.plan.module.tiedTo}"; merging changes both, as in PEFT`);
    }
    const total = model.tensors.size;
    const touched = new Set([...bound.replacements.keys(), ...byWeightKey.keys(), ...byBiasKey.keys()]);
    const copyBuffer = new Uint8Array(Buffer.allocUnsafeSlow(8 << 20).buffer);
    let scratch = new Uint8Array(0);
    let done = 0;
    let bytesWritten = 0;
    await writeDirectoryAtomic(
      params.outDir,
      async (temp) => {
        for (const [fileName, file] of base.files) {
          const specs = file.header.entries.map((e) => ({ name: e.name, dtype: e.dtype, shape: e.shape }));
          const writer = await SafetensorsWriter.create(path.join(temp, fileName), specs, file.header.metadata ?? { format: "pt" });
          try {
            // Tensors the adapter leaves alone are copied in pieces through one buffer; the others are
            // read whole into a reused buffer, merged in place and written. Reusing buffers matters:
            // fresh allocations cost more than the reads themselves (page faults).
            for (const { name, begin, end } of file.header.entries) {
              if (!touched.has(name)) {
                await writer.writeChunks(name, file.readChunks(name, copyBuffer));
                bytesWritten += end - begin;
              } else {
                if (scratch.byteLength < end - begin) scratch = new Uint8Array(Buffer.allocUnsafeSlow(end - begin).buffer);
                const bytes = await produceTensor(name, await file.read(name, scratch));
                await writer.write(name, bytes);
                bytesWritten += bytes.byteLength;
              }
              params.onTensor?.(++done, total);
            }
            await writer.commit();
          } catch (error) {
            await writer.abort();
            throw error;
          }
        }
        if (base.index) await writeFileAtomic(path.join(temp, INDEX_FILE), `${JSON.stringify(base.index, null, 2)}\n`);
        await copyModelFiles(params.baseDir, temp);
      },
      { removeStale: WEIGHT_FILE },
    );
    return {
      mergedModules: bound.modules.map((m) => m.plan.name),
      replacedTensors: [...bound.replacements.keys()],
      tensorCount: total,
      bytesWritten,
    };

    async function produceTensor(name: string, original: Tensor): Promise<Uint8Array> {
      const replacement = bound.replacements.get(name);
      const mods = byWeightKey.get(name);
      const biasOwner = byBiasKey.get(name);
      if (!replacement && !mods && !biasOwner) return original.data;
      const label = `merging into "${name}"`;
      const source = replacement ?? original;
      // A float32 tensor read from the file is merged in place (its buffer is fresh and aligned).
      const inPlace = source === original && original.dtype === "F32" && original.data.byteOffset % 4 === 0;
      const values = inPlace ? new Float32Array(original.data.buffer, original.data.byteOffset, original.data.byteLength / 4) : toFloat32(source, label);
      for (const m of mods ?? []) mergeLora(values, { ...m.factors, loraBias: undefined }, { safe: params.safe, label: `${label} (module ${m.plan.name})` });
      if (biasOwner) {
        mergeLoraBias(values, biasOwner.factors.loraBias!, biasOwner.factors.scaling, { safe: params.safe, label });
      }
      return inPlace ? original.data : fromFloat32(values, original.dtype, label);
    }
  } finally {
    await base.close();
  }
}
