import { AtomicFile } from "../atomic-write.js";
import { LowrankError } from "../../errors/lowrank-error.js";
import { compareForLayout, DTYPE_BYTES, elementCount, type DType, type Tensor } from "./dtype.js";

export interface TensorSpec {
  name: string;
  dtype: DType;
  shape: number[];
}

export interface SafetensorsLayout {
  /** Bytes of the serialised header, length prefix included. */
  headerBytes: Uint8Array;
  /** Data-section offset of each tensor, in the order PyTorch's writer lays them out. */
  offsets: Map<string, { begin: number; end: number }>;
  totalBytes: number;
}

/**
 * Lays out tensors the way the safetensors serializer does: sorted by dtype (larger first, its
 * internal order) then name, packed, compact JSON header with `__metadata__` first, padded with
 * spaces to a multiple of 8.
 */
export function planSafetensorsLayout(specs: readonly TensorSpec[], metadata?: Record<string, string>): SafetensorsLayout {
  const sorted = [...specs].sort(compareForLayout);
  const offsets = new Map<string, { begin: number; end: number }>();
  // Built as text, not as an object: JavaScript would move integer-like names first and drop "__proto__".
  const entries: string[] = [];
  if (metadata) {
    const fields = Object.entries(metadata).map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`);
    entries.push(`"__metadata__":{${fields.join(",")}}`);
  }
  let cursor = 0;
  for (const spec of sorted) {
    if (spec.name === "__metadata__" || offsets.has(spec.name)) {
      throw new LowrankError("SAFETENSORS_INVALID", `${spec.name === "__metadata__" ? "reserved" : "duplicate"} tensor name "${spec.name}"`);
    }
    const size = elementCount(spec.shape) * DTYPE_BYTES[spec.dtype];
    offsets.set(spec.name, { begin: cursor, end: cursor + size });
    entries.push(`${JSON.stringify(spec.name)}:${JSON.stringify({ dtype: spec.dtype, shape: spec.shape, data_offsets: [cursor, cursor + size] })}`);
    cursor += size;
  }
  let json = `{${entries.join(",")}}`;
  const byteLength = Buffer.byteLength(json, "utf8");
  json += " ".repeat((8 - (byteLength % 8)) % 8);
  const jsonBytes = Buffer.from(json, "utf8");
  const headerBytes = new Uint8Array(8 + jsonBytes.byteLength);
  new DataView(headerBytes.buffer).setBigUint64(0, BigInt(jsonBytes.byteLength), true);
  headerBytes.set(jsonBytes, 8);
  return { headerBytes, offsets, totalBytes: headerBytes.byteLength + cursor };
}

/**
 * A safetensors file written tensor by tensor (any order) to a temporary file, renamed into place
 * on `commit`. Suits checkpoints larger than memory.
 */
export class SafetensorsWriter {
  private readonly written = new Set<string>();

  private constructor(
    private readonly file: AtomicFile,
    private readonly layout: SafetensorsLayout,
    private readonly specs: Map<string, TensorSpec>,
  ) {}

  static async create(target: string, specs: readonly TensorSpec[], metadata?: Record<string, string>): Promise<SafetensorsWriter> {
    const layout = planSafetensorsLayout(specs, metadata);
    const file = await AtomicFile.create(target);
    try {
      await file.write(layout.headerBytes, 0);
    } catch (error) {
      await file.abort();
      throw error;
    }
    return new SafetensorsWriter(file, layout, new Map(specs.map((s) => [s.name, s])));
  }

  async write(name: string, data: Uint8Array): Promise<void> {
    const spec = this.specs.get(name);
    const range = this.layout.offsets.get(name);
    if (!spec || !range) throw new LowrankError("SAFETENSORS_INVALID", `${this.file.target}: tensor "${name}" was not declared`);
    if (data.byteLength !== range.end - range.begin) {
      throw new LowrankError(
        "SHAPE_MISMATCH",
        `${this.file.target}: tensor "${name}" has ${data.byteLength} bytes, expected ${range.end - range.begin} for ${spec.dtype}[${spec.shape.join(", ")}]`,
      );
    }
    await this.file.write(data, this.layout.headerBytes.byteLength + range.begin);
    this.written.add(name);
  }

  /** Writes a tensor from consecutive pieces (e.g. SafetensorsFile.readChunks) without holding it whole. */
  async writeChunks(name: string, chunks: AsyncIterable<Uint8Array>): Promise<void> {
    const range = this.layout.offsets.get(name);
    if (!range) throw new LowrankError("SAFETENSORS_INVALID", `${this.file.target}: tensor "${name}" was not declared`);
    let at = range.begin;
    for await (const chunk of chunks) {
      if (at + chunk.byteLength > range.end) {
        throw new LowrankError("SHAPE_MISMATCH", `${this.file.target}: tensor "${name}" got more than the ${range.end - range.begin} bytes it holds`);
      }
      await this.file.write(chunk, this.layout.headerBytes.byteLength + at);
      at += chunk.byteLength;
    }
    if (at !== range.end)
      throw new LowrankError("SHAPE_MISMATCH", `${this.file.target}: tensor "${name}" got ${at - range.begin} bytes, expected ${range.end - range.begin}`);
    this.written.add(name);
  }

  async commit(): Promise<void> {
    const missing = [...this.specs.keys()].filter((n) => !this.written.has(n));
    if (missing.length > 0) {
      await this.file.abort();
      throw new LowrankError("SAFETENSORS_INVALID", `${this.file.target}: tensors never written: ${missing.slice(0, 5).join(", ")}`);
    }
    await this.file.commit();
  }

  abort(): Promise<void> {
    return this.file.abort();
  }
}

/** Serialises tensors to bytes in PyTorch's layout (for small files and tests). */
export function serializeSafetensors(tensors: ReadonlyMap<string, Tensor>, metadata?: Record<string, string>): Uint8Array {
  const specs = [...tensors].map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape }));
  const layout = planSafetensorsLayout(specs, metadata);
  const out = new Uint8Array(layout.totalBytes);
  out.set(layout.headerBytes, 0);
  for (const [name, t] of tensors) {
    const range = layout.offsets.get(name)!;
    if (t.data.byteLength !== range.end - range.begin) {
      throw new LowrankError(
        "SHAPE_MISMATCH",
        `tensor "${name}" has ${t.data.byteLength} bytes, expected ${range.end - range.begin} for ${t.dtype}[${t.shape.join(", ")}]`,
      );
    }
    out.set(t.data, layout.headerBytes.byteLength + range.begin);
  }
  return out;
}

/** Writes tensors to a safetensors file atomically, in PyTorch's layout. */
export async function writeSafetensors(target: string, tensors: ReadonlyMap<string, Tensor>, metadata?: Record<string, string>): Promise<void> {
  const writer = await SafetensorsWriter.create(
    target,
    [...tensors].map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape })),
    metadata,
  );
  try {
    for (const [name, t] of tensors) await writer.write(name, t.data);
    await writer.commit();
  } catch (error) {
    await writer.abort();
    throw error;
  }
}
