import path from "node:path";
import { LowrankError, type LoraAdapter, type Logger } from "@lowrank/core";
import { readModelBytes } from "../platform/files.js";
import { mergeIntoOnnxModel, type MergedOnnx } from "./merge-onnx.js";
import { decodeModel } from "./onnx-codec.js";
import { writeOnnx } from "./write-onnx.js";

/** `lowrank onnx merge`: reads an ONNX file, merges the adapter, writes the result atomically. */
export async function mergeOnnxFile(params: {
  model: string;
  adapter: LoraAdapter;
  out: string;
  safe?: boolean;
  logger?: Logger;
}): Promise<MergedOnnx & { bytes: number }> {
  if (path.resolve(params.out) === path.resolve(params.model))
    throw new LowrankError("USAGE", "--out must differ from --model (the base model is never overwritten)");
  const model = decodeModel(await readModelBytes(params.model), params.model);
  const modelDir = path.dirname(params.model);
  const merged = mergeIntoOnnxModel(model, params.adapter, { modelDir, safe: params.safe, logger: params.logger, label: params.model });
  const written = await writeOnnx(params.out, merged.model, { sourceDir: modelDir });
  return { ...merged, bytes: written.bytes };
}
