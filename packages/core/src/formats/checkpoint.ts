import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import { LowrankError } from "../errors/lowrank-error.js";
import { parseJson } from "./json/parse-json.js";
import type { Tensor } from "./safetensors/dtype.js";
import { SafetensorsFile } from "./safetensors/safetensors-file.js";
import type { TensorInfo } from "../model/model-description.js";

export const SINGLE_FILE = "model.safetensors";
export const INDEX_FILE = "model.safetensors.index.json";

async function readJsonFile(file: string, code: "CHECKPOINT_INVALID" | "ADAPTER_INVALID"): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    throw new LowrankError(code, `${file}: cannot read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  try {
    const value = parseJson(text).value;
    if (typeof value !== "object" || value === null || Array.isArray(value)) throw new Error("not a JSON object");
    return value as Record<string, unknown>;
  } catch (error) {
    throw new LowrankError(code, `${file}: not valid JSON (${(error as Error).message})`);
  }
}

/**
 * A Hugging Face checkpoint folder (config.json + model.safetensors, or shards listed in
 * model.safetensors.index.json), read tensor by tensor. Close it when done.
 */
export class Checkpoint {
  private constructor(
    readonly dir: string,
    readonly config: Record<string, unknown>,
    /** Shard file name → open file, in index order. */
    readonly files: ReadonlyMap<string, SafetensorsFile>,
    private readonly location: ReadonlyMap<string, SafetensorsFile>,
    /** The index's JSON when the checkpoint is sharded. */
    readonly index: Record<string, unknown> | undefined,
  ) {}

  /** @throws LowrankError CHECKPOINT_INVALID naming the missing or bad file. */
  static async open(dir: string): Promise<Checkpoint> {
    const info = await stat(dir).catch(() => undefined);
    if (!info?.isDirectory()) throw new LowrankError("CHECKPOINT_INVALID", `${dir}: not a model folder (expected config.json and model.safetensors)`);
    const config = await readJsonFile(path.join(dir, "config.json"), "CHECKPOINT_INVALID");
    const files = new Map<string, SafetensorsFile>();
    const location = new Map<string, SafetensorsFile>();
    let index: Record<string, unknown> | undefined;
    try {
      if (await stat(path.join(dir, SINGLE_FILE)).catch(() => undefined)) {
        const file = await SafetensorsFile.open(path.join(dir, SINGLE_FILE));
        files.set(SINGLE_FILE, file);
        for (const name of file.names()) location.set(name, file);
      } else if (await stat(path.join(dir, INDEX_FILE)).catch(() => undefined)) {
        index = await readJsonFile(path.join(dir, INDEX_FILE), "CHECKPOINT_INVALID");
        const weightMap = index.weight_map;
        if (typeof weightMap !== "object" || weightMap === null) {
          throw new LowrankError("CHECKPOINT_INVALID", `${path.join(dir, INDEX_FILE)}: \`weight_map\` is missing`);
        }
        for (const [name, shard] of Object.entries(weightMap as Record<string, unknown>)) {
          if (typeof shard !== "string" || shard.includes("/") || shard.includes("\\") || shard.startsWith(".")) {
            throw new LowrankError(
              "CHECKPOINT_INVALID",
              `${path.join(dir, INDEX_FILE)}: \`weight_map.${name}\` names an invalid shard ${JSON.stringify(shard)}`,
            );
          }
          let file = files.get(shard);
          if (!file) {
            file = await SafetensorsFile.open(path.join(dir, shard));
            files.set(shard, file);
          }
          if (!file.has(name)) throw new LowrankError("CHECKPOINT_INVALID", `${path.join(dir, shard)}: has no tensor "${name}" although the index says so`);
          location.set(name, file);
        }
      } else {
        throw new LowrankError("CHECKPOINT_INVALID", `${dir}: has no ${SINGLE_FILE} or ${INDEX_FILE}`);
      }
    } catch (error) {
      for (const f of files.values()) await f.close();
      throw error;
    }
    return new Checkpoint(dir, config, files, location, index);
  }

  /** Every tensor's dtype and shape, in file order. */
  tensorInfo(): Map<string, TensorInfo> {
    const out = new Map<string, TensorInfo>();
    for (const [name, file] of this.location) {
      const e = file.entry(name);
      out.set(name, { dtype: e.dtype, shape: [...e.shape] });
    }
    return out;
  }

  has(name: string): boolean {
    return this.location.has(name);
  }

  read(name: string): Promise<Tensor> {
    return this.fileOf(name).read(name);
  }

  readFloat32(name: string): Promise<Float32Array> {
    return this.fileOf(name).readFloat32(name);
  }

  private fileOf(name: string): SafetensorsFile {
    const file = this.location.get(name);
    if (!file) throw new LowrankError("CHECKPOINT_INVALID", `${this.dir}: has no tensor "${name}"`);
    return file;
  }

  async close(): Promise<void> {
    for (const f of this.files.values()) await f.close();
  }
}
