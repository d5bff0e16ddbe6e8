import { open, type FileHandle } from "node:fs/promises";
import path from "node:path";
import { LowrankError } from "../../errors/lowrank-error.js";
import { toFloat32, type Tensor } from "./dtype.js";
import { parseHeader, readHeaderLength, type SafetensorsHeader, type TensorEntry } from "./parse-header.js";

async function readExactly(handle: FileHandle, length: number, position: number, label: string, into?: Uint8Array): Promise<Uint8Array> {
  // Not zero-filled (every byte is read into), and not from Node's pool, so it starts at offset 0
  // and can be viewed as any typed array. A caller's buffer saves the allocation (and its page faults).
  const out = into ? into.subarray(0, length) : new Uint8Array(Buffer.allocUnsafeSlow(length).buffer, 0, length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await handle.read(out, done, length - done, position + done);
    if (bytesRead === 0) throw new LowrankError("SAFETENSORS_INVALID", `${label}: file ended early (wanted ${length} bytes at ${position})`);
    done += bytesRead;
  }
  return out;
}

/**
 * A safetensors file open for reading tensor by tensor: only the header is read up front, so files
 * larger than memory (or than 2 GB) work. Close it when done.
 *
 * @example
 * const file = await SafetensorsFile.open("model.safetensors");
 * try { const w = await file.readFloat32("lm_head.weight"); } finally { await file.close(); }
 */
export class SafetensorsFile {
  private readonly byName: Map<string, TensorEntry>;

  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    readonly header: SafetensorsHeader,
  ) {
    this.byName = new Map(header.entries.map((e) => [e.name, e]));
  }

  /** @throws LowrankError SAFETENSORS_INVALID (bad header) or IO_ERROR (cannot open). */
  static async open(filePath: string): Promise<SafetensorsFile> {
    const label = path.basename(filePath) === filePath ? filePath : filePath;
    let handle: FileHandle;
    try {
      handle = await open(filePath, "r");
    } catch (error) {
      throw new LowrankError("IO_ERROR", `${label}: cannot open (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`, { usage: true });
    }
    try {
      const { size } = await handle.stat();
      const prefix = await readExactly(handle, Math.min(8, size), 0, label);
      const n = readHeaderLength(prefix, size, label);
      const headerBytes = await readExactly(handle, n, 8, label);
      const header = parseHeader(headerBytes, size - 8 - n, label);
      return new SafetensorsFile(filePath, handle, header);
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  /** Tensor names in data order. */
  names(): string[] {
    return this.header.entries.map((e) => e.name);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  entry(name: string): TensorEntry {
    const e = this.byName.get(name);
    if (!e) throw new LowrankError("SAFETENSORS_INVALID", `${this.path}: no tensor named "${name}"`);
    return e;
  }

  /**
   * Reads one tensor's raw bytes, into `into` (a view of its first bytes) when given and large
   * enough, else into a fresh buffer.
   */
  async read(name: string, into?: Uint8Array): Promise<Tensor> {
    const e = this.entry(name);
    const length = e.end - e.begin;
    const data = await readExactly(this.handle, length, this.header.dataStart + e.begin, this.path, into && into.byteLength >= length ? into : undefined);
    return { dtype: e.dtype, shape: [...e.shape], data };
  }

  /** A tensor's raw bytes in pieces of at most `buffer`'s size; each piece is valid until the next. */
  async *readChunks(name: string, buffer: Uint8Array): AsyncGenerator<Uint8Array> {
    const e = this.entry(name);
    for (let at = e.begin; at < e.end; at += buffer.byteLength) {
      const length = Math.min(buffer.byteLength, e.end - at);
      yield await readExactly(this.handle, length, this.header.dataStart + at, this.path, buffer);
    }
  }

  /** Reads a floating-point tensor widened to float32 (F16/BF16 exactly). */
  async readFloat32(name: string): Promise<Float32Array> {
    return toFloat32(await this.read(name), `${this.path}: tensor "${name}"`);
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}

/** Reads every tensor of a (small) safetensors file into memory. */
export async function readSafetensors(filePath: string): Promise<{ tensors: Map<string, Tensor>; metadata?: Record<string, string> }> {
  const file = await SafetensorsFile.open(filePath);
  try {
    const tensors = new Map<string, Tensor>();
    for (const name of file.names()) tensors.set(name, await file.read(name));
    return { tensors, metadata: file.header.metadata };
  } finally {
    await file.close();
  }
}
