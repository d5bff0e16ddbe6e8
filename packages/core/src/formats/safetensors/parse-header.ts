import { LowrankError } from "../../errors/lowrank-error.js";
import { parseJson } from "../json/parse-json.js";
import { DTYPE_BYTES, isDType, type DType } from "./dtype.js";

/** One tensor's entry in a safetensors header; offsets are relative to the data section. */
export interface TensorEntry {
  name: string;
  dtype: DType;
  shape: number[];
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  /** Entries in data order. */
  entries: TensorEntry[];
  metadata: Record<string, string> | undefined;
  /** Bytes before the data section (8 + header length). */
  dataStart: number;
}

/** Headers larger than this are refused (safetensors' own limit is 100 MB). */
export const MAX_HEADER_BYTES = 100_000_000;

/**
 * Reads the 8-byte header length and checks it against the file size and the 100 MB limit.
 * @throws LowrankError SAFETENSORS_INVALID
 */
export function readHeaderLength(prefix: Uint8Array, fileSize: number, label: string): number {
  const bad = (why: string): never => {
    throw new LowrankError("SAFETENSORS_INVALID", `${label}: not a valid safetensors file: ${why}`);
  };
  if (fileSize < 8 || prefix.byteLength < 8) bad(`file is ${fileSize} bytes, shorter than the 8-byte header length`);
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) bad(`header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  if (n > BigInt(fileSize - 8)) bad(`header length ${n} is beyond the end of the ${fileSize}-byte file`);
  if (n < 2n) bad(`header length ${n} is too small for a JSON object`);
  return Number(n);
}

/**
 * Parses and validates a safetensors JSON header: known dtypes, non-negative integer dims,
 * byte ranges equal to shape × dtype size, inside the data section, and (in data order, whatever
 * the header's order) following one another with no overlap, gap or trailing bytes — the checks of
 * the reference implementation, so that a file read here is one Python reads too.
 * @throws LowrankError SAFETENSORS_INVALID naming the file and the tensor.
 */
export function parseHeader(headerBytes: Uint8Array, dataBytes: number, label: string): SafetensorsHeader {
  const bad = (why: string): never => {
    throw new LowrankError("SAFETENSORS_INVALID", `${label}: not a valid safetensors file: ${why}`);
  };
  let text = "";
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(headerBytes);
  } catch {
    bad("header is not valid UTF-8");
  }
  let raw: unknown;
  try {
    raw = parseJson(text.replace(/ +$/, "")).value;
  } catch (error) {
    bad(`header is not valid JSON (${(error as Error).message})`);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) bad("header is not a JSON object");
  const record = raw as Record<string, unknown>;
  let metadata: Record<string, string> | undefined;
  const entries: TensorEntry[] = [];
  for (const [name, value] of Object.entries(record)) {
    if (name === "__metadata__") {
      if (typeof value !== "object" || value === null || Array.isArray(value)) bad("`__metadata__` is not an object");
      for (const [k, v] of Object.entries(value as object)) {
        if (typeof v !== "string") bad(`\`__metadata__.${k}\` is not a string`);
      }
      metadata = value as Record<string, string>;
      continue;
    }
    if (typeof value !== "object" || value === null) bad(`entry "${name}" is not an object`);
    const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
    if (!isDType(dtype)) bad(`tensor "${name}" has unknown dtype ${JSON.stringify(dtype)}`);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
      bad(`tensor "${name}" has an invalid shape ${JSON.stringify(shape)}`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && (o as number) >= 0)) {
      bad(`tensor "${name}" has invalid data_offsets ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as [number, number]; // length 2, checked above
    if (end < begin) bad(`tensor "${name}" has data_offsets [${begin}, ${end}] that end before they begin`);
    if (end > dataBytes) bad(`tensor "${name}" has data_offsets [${begin}, ${end}] beyond the ${dataBytes}-byte data section`);
    let expected = (shape as number[]).includes(0) ? 0 : DTYPE_BYTES[dtype as DType];
    for (const d of shape as number[]) {
      if (expected === 0) break;
      expected *= d;
      if (expected > dataBytes) bad(`tensor "${name}" of shape [${(shape as number[]).join(", ")}] needs more bytes than the file holds`);
    }
    if (expected !== end - begin) {
      bad(`tensor "${name}" of shape [${(shape as number[]).join(", ")}] and dtype ${dtype} needs ${expected} bytes but data_offsets span ${end - begin}`);
    }
    entries.push({ name, dtype: dtype as DType, shape: shape as number[], begin, end });
  }
  // The header may list tensors in any order; in data order they must tile the data section exactly
  // (as the reference implementation requires): no overlap, no gap, no trailing bytes.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  for (let i = 0; i < entries.length; i++) {
    const cur = entries[i]!;
    const prev = entries[i - 1];
    if (prev && cur.begin < prev.end)
      bad(`tensors "${prev.name}" and "${cur.name}" overlap (data_offsets [${prev.begin}, ${prev.end}] and [${cur.begin}, ${cur.end}])`);
    if (cur.begin > cursor)
      bad(`bytes [${cursor}, ${cur.begin}) of the data section belong to no tensor (before tensor "${cur.name}"): data_offsets must follow one another`);
    cursor = cur.end;
  }
  if (cursor !== dataBytes)
    bad(`the data section has ${dataBytes - cursor} trailing bytes after the last tensor (data_offsets end at ${cursor}, the file holds ${dataBytes})`);
  return { entries, metadata, dataStart: 8 + headerBytes.byteLength };
}
