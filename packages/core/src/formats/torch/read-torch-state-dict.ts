import { open } from "node:fs/promises";
import { constants as bufferConstants } from "node:buffer";
import { LowrankError } from "../../errors/lowrank-error.js";
import { printable, torchFormatError } from "./torch-format-error.js";
import { openZipArchive, type ZipArchive } from "./zip-reader.js";
import { readPickle } from "./pickle-reader.js";
import { describeValue, PickleDict, TorchTensorRef, type TorchStorageRef, type PickleValue } from "./pickle-values.js";
import { DTYPE_ITEM_SIZE, type TorchDType } from "./torch-dtypes.js";
import { copyStridedTensor } from "./strided-copy.js";

export type { TorchDType } from "./torch-dtypes.js";

/** One tensor of a `torch.save` state dict, as contiguous row-major little-endian bytes. */
export interface TorchTensor {
  name: string;
  dtype: TorchDType;
  shape: number[];
  /** Exactly this tensor's bytes (storage offset and strides applied), in a fresh buffer at byte offset 0. */
  data: Uint8Array;
}

/** Keys under which a training script may wrap the state dict (microsoft/LoRA uses "model_state_dict"). */
const WRAPPER_KEYS = ["model_state_dict", "state_dict"] as const;

/** Reads a `torch.save` file (zip + pickle) holding a dict of tensors, without executing anything. */
export async function readTorchStateDict(path: string): Promise<Map<string, TorchTensor>> {
  return parseTorchStateDict(await readWholeFile(path), path);
}

/**
 * Parses the bytes of a `torch.save` zip file holding a dict (or OrderedDict) of tensors. Keys come in pickle order;
 * a lone dict under "model_state_dict" or "state_dict" is unwrapped; other non-tensor values are skipped.
 * Every problem is a one-line `PICKLE_INVALID` LowrankError that starts with `fileLabel`.
 */
export function parseTorchStateDict(bytes: Uint8Array, fileLabel: string): Map<string, TorchTensor> {
  const zip = openZipArchive(bytes, fileLabel);
  const prefix = archivePrefix(zip, fileLabel);
  const bigEndian = isBigEndian(zip, prefix, fileLabel);
  const stateDict = selectStateDict(readPickle(zip.read(`${prefix}data.pkl`), fileLabel), fileLabel);
  const storages = new Map<string, Uint8Array>();
  const tensors = new Map<string, TorchTensor>();
  for (const [key, value] of stateDict.entries) {
    if (!(value instanceof TorchTensorRef)) continue;
    if (typeof key !== "string") throw torchFormatError(fileLabel, `state dict has a tensor under a ${describeValue(key)} key, not a string`);
    const fail = (problem: string): Error => torchFormatError(fileLabel, `tensor "${printable(key)}" ${problem}`);
    const storage = loadStorage(zip, prefix, value.storage, storages, fail);
    const itemSize = DTYPE_ITEM_SIZE[value.storage.dtype];
    const view = { storage, itemSize, storageOffset: value.storageOffset, size: value.size, stride: value.stride };
    const data = copyStridedTensor({ ...view, maxBytes: Math.max(bytes.length, storage.length) }, fail);
    if (bigEndian) swapBytes(data, itemSize);
    tensors.set(key, { name: key, dtype: value.storage.dtype, shape: [...value.size], data });
  }
  return tensors;
}

/** The folder all members sit in, taken from the member named `<folder>/data.pkl`. */
function archivePrefix(zip: ZipArchive, label: string): string {
  const names = zip.names();
  const pickles = names.filter((name) => name === "data.pkl" || name.endsWith("/data.pkl"));
  if (pickles.length === 0) {
    const shown = names
      .slice(0, 5)
      .map((n) => `"${printable(n)}"`)
      .join(", ");
    throw torchFormatError(label, `zip archive has no data.pkl member, so it is not a torch.save file (members: ${shown || "none"})`);
  }
  if (pickles.length > 1) {
    throw torchFormatError(
      label,
      `zip archive has ${pickles.length} data.pkl members ("${printable(pickles[0]!)}", "${printable(pickles[1]!)}", …); expected one`,
    );
  }
  const pickle = pickles[0]!; // not empty, checked above
  return pickle.slice(0, pickle.length - "data.pkl".length);
}

/** Newer PyTorch writes a `byteorder` member; without one the data is little-endian. */
function isBigEndian(zip: ZipArchive, prefix: string, label: string): boolean {
  if (!zip.members.has(`${prefix}byteorder`)) return false;
  const order = new TextDecoder().decode(zip.read(`${prefix}byteorder`)).trim();
  if (order !== "little" && order !== "big") throw torchFormatError(label, `byteorder member says "${printable(order)}", expected "little" or "big"`);
  return order === "big";
}

/** The dict of tensors: the top-level dict, or the one dict under "model_state_dict"/"state_dict" if exactly one exists. */
function selectStateDict(root: PickleValue, label: string): PickleDict {
  if (!(root instanceof PickleDict)) {
    throw torchFormatError(label, `top-level pickle object is a ${describeValue(root)}, not a dict of tensors`);
  }
  const wrapped = WRAPPER_KEYS.map((key) => root.entries.get(key)).filter((value) => value instanceof PickleDict);
  return wrapped.length === 1 ? (wrapped[0] as PickleDict) : root;
}

/** Returns the bytes of a storage's zip member, checked to hold its declared element count (cached by key). */
function loadStorage(zip: ZipArchive, prefix: string, ref: TorchStorageRef, cache: Map<string, Uint8Array>, fail: (problem: string) => Error): Uint8Array {
  const member = `${prefix}data/${ref.key}`;
  let bytes = cache.get(ref.key);
  if (bytes === undefined) {
    if (!zip.members.has(member)) throw fail(`uses storage "${printable(ref.key)}", but zip member "${printable(member)}" is missing`);
    bytes = zip.read(member);
    cache.set(ref.key, bytes);
  }
  const needed = ref.numel * DTYPE_ITEM_SIZE[ref.dtype];
  if (needed > bytes.length) {
    throw fail(
      `uses storage "${printable(ref.key)}" of ${ref.numel} ${ref.dtype} elements (${needed} bytes), but zip member "${printable(member)}" holds only ` +
        `${bytes.length} bytes`,
    );
  }
  return bytes.subarray(0, needed);
}

function swapBytes(data: Uint8Array, itemSize: number): void {
  if (itemSize === 1) return;
  for (let start = 0; start < data.length; start += itemSize) data.subarray(start, start + itemSize).reverse();
}

/** Reads a whole file into one buffer (fs.readFile stops at 2 GiB; this goes up to the Buffer limit). */
async function readWholeFile(path: string): Promise<Uint8Array> {
  let handle;
  try {
    handle = await open(path, "r");
    const { size } = await handle.stat();
    if (size > bufferConstants.MAX_LENGTH) {
      throw new LowrankError("IO_ERROR", `${path}: file is ${size} bytes, more than this Node.js can hold in memory (${bufferConstants.MAX_LENGTH})`);
    }
    const bytes = new Uint8Array(size);
    let filled = 0;
    while (filled < size) {
      const { bytesRead } = await handle.read(bytes, filled, Math.min(size - filled, 1 << 30), filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    return filled === size ? bytes : bytes.subarray(0, filled);
  } catch (error) {
    if (error instanceof LowrankError) throw error;
    const reason = error instanceof Error ? error.message : String(error);
    throw new LowrankError("IO_ERROR", `${path}: cannot read file (${reason.split("\n")[0]})`, { cause: error });
  } finally {
    await handle?.close();
  }
}
