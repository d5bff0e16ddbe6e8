import { readFile } from "node:fs/promises";
import path from "node:path";
import { LowrankError } from "@lowrank/core";
import type { ModelProto } from "../onnx/onnx-codec.js";
import { buildDecoderGraph, ONNX_DECODER_MODEL_TYPES } from "./decoder-graph.js";
import { buildEncoderGraph, ONNX_ENCODER_MODEL_TYPES } from "./encoder-graph.js";

/** Every model type whose inference graph lowrank builds from a Hugging Face checkpoint. */
export const ONNX_MODEL_TYPES: readonly string[] = [...ONNX_DECODER_MODEL_TYPES, ...ONNX_ENCODER_MODEL_TYPES];

/** config.json's model_type in a folder, or undefined when it has none (or no readable config). */
export async function modelTypeIn(dir: string): Promise<string | undefined> {
  const config = await readFile(path.join(dir, "config.json"), "utf8").then(
    (t) => JSON.parse(t) as { model_type?: unknown },
    () => undefined,
  );
  return typeof config?.model_type === "string" ? config.model_type : undefined;
}

/**
 * The inference graph of a checkpoint folder: a decoder's with a key/value cache (buildDecoderGraph)
 * or an encoder's (buildEncoderGraph), by config.json's model_type.
 * @throws LowrankError CHECKPOINT_INVALID for a model type neither builds.
 */
export async function buildCheckpointGraph(dir: string): Promise<ModelProto> {
  const type = await modelTypeIn(dir);
  if (type !== undefined && (ONNX_ENCODER_MODEL_TYPES as readonly string[]).includes(type)) return buildEncoderGraph(dir);
  if (type !== undefined && (ONNX_DECODER_MODEL_TYPES as readonly string[]).includes(type)) return buildDecoderGraph(dir);
  throw new LowrankError(
    "CHECKPOINT_INVALID",
    `${dir}: ${type === undefined ? "no config.json model_type" : `model_type "${type}"`} has no ONNX graph builder (supported: ${ONNX_MODEL_TYPES.join(", ")})`,
  );
}
