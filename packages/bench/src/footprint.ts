import { stat } from "node:fs/promises";
import path from "node:path";
import { ADAPTER_WEIGHTS_FILE, Checkpoint, writeAdapter, type LoraConfigInput } from "@lowrank/core";
import { elementCount } from "@lowrank/core/internal";
import { randomAdapter } from "./synthetic-model.js";

/** The adapters the suite compares with full fine-tuning (GPT-2 naming: c_attn is the fused q,k,v projection). */
export const ADAPTER_VARIANTS: { label: string; config: LoraConfigInput }[] = [
  { label: "LoRA r=4, attention (c_attn)", config: { r: 4, lora_alpha: 32, target_modules: ["c_attn"], fan_in_fan_out: true } },
  { label: "LoRA r=8, attention (c_attn)", config: { r: 8, lora_alpha: 16, target_modules: ["c_attn"], fan_in_fan_out: true } },
  { label: "LoRA r=8, all-linear", config: { r: 8, lora_alpha: 16, target_modules: "all-linear", fan_in_fan_out: true } },
];

export interface FootprintRow {
  model: string;
  method: string;
  trainable_parameters: number;
  total_parameters: number;
  /** adapter_model.safetensors for LoRA, model.safetensors for full fine-tuning. */
  file_bytes: number;
}

/** Elements of every tensor the checkpoint stores (tied weights stored once count once). */
export async function checkpointParameterCount(modelDir: string): Promise<number> {
  const checkpoint = await Checkpoint.open(modelDir);
  try {
    let total = 0;
    for (const info of checkpoint.tensorInfo().values()) total += elementCount(info.shape);
    return total;
  } finally {
    await checkpoint.close();
  }
}

/** Trainable parameters and saved file size of each adapter variant against full fine-tuning. */
export async function measureFootprint(modelDir: string, model: string, workDir: string): Promise<FootprintRow[]> {
  const total = await checkpointParameterCount(modelDir);
  const rows: FootprintRow[] = [];
  for (const [i, variant] of ADAPTER_VARIANTS.entries()) {
    const adapter = await randomAdapter(modelDir, variant.config);
    const dir = path.join(workDir, `adapter-${i}`);
    await writeAdapter(dir, adapter);
    let trainable = 0;
    for (const tensor of adapter.tensors.values()) trainable += elementCount(tensor.shape);
    rows.push({
      model,
      method: variant.label,
      trainable_parameters: trainable,
      total_parameters: total,
      file_bytes: (await stat(path.join(dir, ADAPTER_WEIGHTS_FILE))).size,
    });
  }
  rows.push({
    model,
    method: "full fine-tuning",
    trainable_parameters: total,
    total_parameters: total,
    file_bytes: (await stat(path.join(modelDir, "model.safetensors"))).size,
  });
  return rows;
}
