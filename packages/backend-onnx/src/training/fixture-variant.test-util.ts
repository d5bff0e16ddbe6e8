/**
 * Test-only: a copy of a fixture checkpoint with config.json fields changed and, optionally, some
 * weights cut to new shapes (e.g. a smaller head_dim), for cases no fixture covers.
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { float32Tensor, readSafetensors, toFloat32, writeSafetensors, type Tensor } from "@lowrank/core";
import { requireFixture } from "@lowrank/core/testing";

/** The leading `rows` × `cols` block of a 2-D float tensor (the rows and columns it keeps). */
export function leadingBlock(t: Tensor, rows: number, cols: number): Tensor {
  const [, width] = t.shape as [number, number];
  const values = toFloat32(t);
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) out.set(values.subarray(r * width, r * width + cols), r * cols);
  return float32Tensor(out, [rows, cols]);
}

/**
 * Writes fixture `name` into `dir` with `config` merged into its config.json and each tensor passed
 * through `tensor` (identity by default). Returns `dir`.
 */
export async function fixtureVariant(params: {
  name: string;
  dir: string;
  config: Record<string, unknown>;
  tensor?: (name: string, t: Tensor) => Tensor;
}): Promise<string> {
  const source = requireFixture(params.name);
  await mkdir(params.dir, { recursive: true });
  const config = JSON.parse(await readFile(path.join(source, "config.json"), "utf8")) as Record<string, unknown>;
  await writeFile(path.join(params.dir, "config.json"), JSON.stringify({ ...config, ...params.config }, null, 2));
  const { tensors } = await readSafetensors(path.join(source, "model.safetensors"));
  const map = params.tensor ?? ((_, t) => t);
  await writeSafetensors(path.join(params.dir, "model.safetensors"), new Map([...tensors].map(([k, t]) => [k, map(k, t)])));
  return params.dir;
}
