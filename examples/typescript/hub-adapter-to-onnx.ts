// Pull a PEFT adapter from a Hub and merge it into the ONNX graph of its base; run it on ONNX Runtime.
import { readAdapter } from "@lowrank/core";
import { buildDecoderGraph, mergeIntoOnnxModel, OnnxBackend, writeOnnx } from "@lowrank/backend-onnx";
import { pullRepo, resolveHubConfig } from "@lowrank/hub";

export async function hubAdapterToOnnx(options: {
  baseDir: string;
  repo: string;
  /** Where the merged model.onnx is written. */
  out: string;
  hubUrl?: string;
  token?: string;
  cacheDir?: string;
  ids: number[][];
}): Promise<{ logits: Float32Array; merged: string[] }> {
  const config = resolveHubConfig({ hubUrl: options.hubUrl, token: options.token, cacheDir: options.cacheDir });
  const { snapshotDir } = await pullRepo({ repo: options.repo, config });
  const adapter = await readAdapter(snapshotDir);
  // The base's graph (with a key/value cache), built from its checkpoint, with the adapter folded in.
  const { model, mergedModules } = mergeIntoOnnxModel(await buildDecoderGraph(options.baseDir), adapter, { modelDir: options.baseDir });
  await writeOnnx(options.out, model, { sourceDir: options.baseDir });
  const { logits } = await new OnnxBackend().predict({ model: options.out, inputIds: options.ids });
  return { logits: logits.data, merged: mergedModules };
}
