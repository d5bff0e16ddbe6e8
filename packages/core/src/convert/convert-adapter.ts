import { open, readFile, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { parseAdapterKey } from "../adapter/adapter-keys.js";
import type { LoraAdapter } from "../adapter/lora-adapter.js";
import { collectLoraModules } from "../adapter/lora-modules.js";
import { readAdapter } from "../adapter/read-adapter.js";
import { writeAdapter } from "../adapter/write-adapter.js";
import { LowrankError } from "../errors/lowrank-error.js";
import { writeDirectoryAtomic, writeFileAtomic } from "../formats/atomic-write.js";
import { readSafetensors } from "../formats/safetensors/safetensors-file.js";
import { writeSafetensors } from "../formats/safetensors/write-safetensors.js";
import { Checkpoint } from "../formats/checkpoint.js";
import { toFloat32 } from "../formats/safetensors/dtype.js";
import { describeModel } from "../model/describe-model.js";
import type { GgmlTypeName } from "./gguf-file.js";
import { readGguf } from "./gguf-file.js";
import { ggufToPeft, peftToGguf, type ConversionBase } from "./gguf-lora.js";
import { mlxToPeft, peftToMlx } from "./mlx-lora.js";
import { decodeOnnxAdapter, encodeOnnxAdapter } from "./onnx-adapter-file.js";
import { onnxAdapterToPeft, peftToOnnxAdapter, type OnnxAdapterNaming } from "./onnx-adapter-lora.js";

/** mlx-lm's adapter weights file. */
const MLX_WEIGHTS = "adapters.safetensors";

/** The adapter formats lowrank converts between. */
export const ADAPTER_FORMATS = ["peft", "gguf", "mlx", "onnx-adapter"] as const;
export type AdapterFormat = (typeof ADAPTER_FORMATS)[number];

/** A base model folder read for conversion: its config.json and module description (no weights read). */
export async function conversionBase(dir: string): Promise<ConversionBase> {
  const checkpoint = await Checkpoint.open(dir);
  try {
    return { config: checkpoint.config, description: describeModel(checkpoint.config, checkpoint.tensorInfo()), label: dir };
  } finally {
    await checkpoint.close();
  }
}

/**
 * What an adapter path holds: a GGUF file (its magic), an ONNX Runtime adapter (the "TORT" identifier),
 * an mlx-lm adapter folder (adapters.safetensors),
 * or a PEFT adapter folder (adapter_config.json).
 * @throws LowrankError USAGE when it is neither.
 */
export async function detectAdapterFormat(location: string): Promise<AdapterFormat> {
  const info = await stat(location).catch(() => undefined);
  if (!info) throw new LowrankError("USAGE", `${location}: no such file or folder`);
  if (info.isFile()) {
    const handle = await open(location, "r");
    try {
      const [magic, identifier] = [Buffer.alloc(4), Buffer.alloc(4)];
      await handle.read(magic, 0, 4, 0);
      await handle.read(identifier, 0, 4, 4);
      if (magic.toString("latin1") === "GGUF") return "gguf";
      if (identifier.toString("latin1") === "TORT") return "onnx-adapter";
    } finally {
      await handle.close();
    }
    throw new LowrankError("USAGE", `${location}: not an adapter lowrank converts (a GGUF or .onnx_adapter file, or a PEFT or mlx-lm adapter folder)`);
  }
  if (await stat(path.join(location, MLX_WEIGHTS)).catch(() => undefined)) return "mlx";
  if (await stat(path.join(location, "adapter_config.json")).catch(() => undefined)) return "peft";
  throw new LowrankError("USAGE", `${location}: a folder with neither adapter_config.json (PEFT) nor ${MLX_WEIGHTS} (mlx-lm)`);
}

/** Reads an adapter of any supported format as PEFT's, against `base`. */
export async function readAdapterAs(location: string, base: ConversionBase): Promise<{ format: AdapterFormat; adapter: LoraAdapter }> {
  const format = await detectAdapterFormat(location);
  if (format === "gguf") return { format, adapter: ggufToPeft(await readGguf(location), base, location) };
  if (format === "onnx-adapter") {
    const { parameters } = decodeOnnxAdapter(await readFile(location), location);
    const adapter = onnxAdapterToPeft(parameters, { label: location, fanInFanOut: base.config.model_type === "gpt2", baseModel: base.label });
    const unknown = [...collectLoraModules(adapter).modules.keys()].find((m) => !base.description.byName.has(m));
    if (unknown !== undefined) throw new LowrankError("CHECKPOINT_INVALID", `${location}: "${unknown}" is no module of ${base.label}`);
    return { format, adapter };
  }
  if (format === "mlx") {
    const configFile = path.join(location, "adapter_config.json");
    const config = await readFile(configFile, "utf8")
      .then((text) => JSON.parse(text) as Record<string, unknown>)
      .catch((error: Error) => {
        throw new LowrankError("CHECKPOINT_INVALID", `${configFile}: ${error.message.split("\n")[0]}`);
      });
    return { format, adapter: mlxToPeft({ config, tensors: (await readSafetensors(path.join(location, MLX_WEIGHTS))).tensors }, base, location) };
  }
  return { format, adapter: await readAdapter(location) };
}

/**
 * The adapter without the whole tensors it saves unchanged from the base (PEFT saves the embedding
 * table beside embedding LoRA, `save_embedding_layers`): those change nothing, and formats made of
 * factors cannot hold them. Tensors that differ from the base are kept (and refused by such formats).
 */
export async function withoutUnchangedBaseTensors(adapter: LoraAdapter, baseDir: string): Promise<LoraAdapter> {
  if (collectLoraModules(adapter).replacements.size === 0) return adapter;
  const checkpoint = await Checkpoint.open(baseDir);
  try {
    const tensors = new Map(adapter.tensors);
    for (const [key, tensor] of adapter.tensors) {
      const parsed = parseAdapterKey(key);
      if (parsed?.role !== "replacement" || !checkpoint.tensorInfo().has(parsed.baseKey)) continue;
      const [stored, saved] = [await checkpoint.readFloat32(parsed.baseKey), toFloat32(tensor, key)];
      if (stored.length === saved.length && stored.every((v, i) => v === saved[i])) tensors.delete(key);
    }
    return { ...adapter, tensors };
  } finally {
    await checkpoint.close();
  }
}

/**
 * Writes `adapter` in `format` at `out` (a folder for PEFT and mlx-lm, a file for GGUF and ONNX
 * Runtime's .onnx_adapter, whose inputs are named for Olive's models or backend-onnx's slots), atomically.
 * @throws LowrankError USAGE for what the format cannot hold.
 */
export async function writeAdapterAs(
  adapter: LoraAdapter,
  format: AdapterFormat,
  out: string,
  base: ConversionBase,
  options: { ggufType?: GgmlTypeName; onnxNaming?: OnnxAdapterNaming; name?: string } = {},
): Promise<void> {
  if (format === "gguf") {
    const factors = await withoutUnchangedBaseTensors(adapter, base.label);
    await writeFileAtomic(out, peftToGguf(factors, base, { type: options.ggufType, name: options.name }));
    return;
  }
  if (format === "onnx-adapter") {
    const factors = await withoutUnchangedBaseTensors(adapter, base.label);
    await writeFileAtomic(out, encodeOnnxAdapter(peftToOnnxAdapter(factors, options.onnxNaming, options.name)));
    return;
  }
  if (format === "mlx") {
    const mlx = peftToMlx(await withoutUnchangedBaseTensors(adapter, base.label), base, options.name);
    await writeDirectoryAtomic(out, async (temp) => {
      await writeSafetensors(path.join(temp, MLX_WEIGHTS), mlx.tensors, { format: "mlx" });
      await writeFile(path.join(temp, "adapter_config.json"), `${JSON.stringify(mlx.config, null, 2)}\n`);
    });
    return;
  }
  await writeAdapter(out, adapter);
}
