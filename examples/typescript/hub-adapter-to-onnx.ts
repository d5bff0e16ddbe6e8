// Pull a PEFT adapter from a Hub and merge it into an ONNX export of its base; run it on ONNX Runtime.
import { readAdapter } from "@lowrank/core";
import { createOrtSession, encodeModel, exportGpt2Onnx, idsTensor, mergeIntoOnnxModel } from "@lowrank/backend-onnx";
import { pullRepo, resolveHubConfig } from "@lowrank/hub";

export async function hubAdapterToOnnx(options: {
  baseDir: string;
  repo: string;
  hubUrl?: string;
  token?: string;
  cacheDir?: string;
  ids: number[][];
}): Promise<{ logits: Float32Array; merged: string[] }> {
  const config = resolveHubConfig({ hubUrl: options.hubUrl, token: options.token, cacheDir: options.cacheDir });
  const { snapshotDir } = await pullRepo({ repo: options.repo, config });
  const adapter = await readAdapter(snapshotDir);
  const onnx = await exportGpt2Onnx(options.baseDir);
  const { mergedModules } = mergeIntoOnnxModel(onnx, adapter, { modelDir: options.baseDir });
  const { session } = await createOrtSession(encodeModel(onnx));
  const out = await session.run({ input_ids: idsTensor(options.ids) });
  await session.release();
  return { logits: out.logits!.data as Float32Array, merged: mergedModules };
}
