import { inflateRawSync } from "node:zlib";
import { printable, torchFormatError } from "./torch-format-error.js";

const EOCD_SIGNATURE = 0x06054b50;
const ZIP64_LOCATOR_SIGNATURE = 0x07064b50;
const ZIP64_EOCD_SIGNATURE = 0x06064b50;
const CENTRAL_SIGNATURE = 0x02014b50;
const LOCAL_SIGNATURE = 0x04034b50;
const EOCD_SIZE = 22;
const CENTRAL_HEADER_SIZE = 46;
const LOCAL_HEADER_SIZE = 30;
const MAX_COMMENT = 0xffff;
const U32_MAX = 0xffffffff;
const U16_MAX = 0xffff;
/** Deflate cannot expand data by more than about 1032:1; a larger declared size is forged. */
const MAX_DEFLATE_RATIO = 1032;

/** One member as the central directory describes it. */
export interface ZipMember {
  name: string;
  method: number;
  flags: number;
  compressedSize: number;
  uncompressedSize: number;
  localHeaderOffset: number;
}

interface DirectoryLocation {
  entryCount: number;
  offset: number;
  size: number;
  /** Where the end records start; the central directory must end at or before this. */
  end: number;
}

/** A read-only view of a zip archive held in memory; members are located through the central directory. */
export class ZipArchive {
  constructor(
    private readonly bytes: Uint8Array,
    private readonly label: string,
    /** Members by name, in central-directory order. */
    readonly members: ReadonlyMap<string, ZipMember>,
  ) {}

  /** The member names in central-directory order. */
  names(): string[] {
    return [...this.members.keys()];
  }

  /** Returns the uncompressed bytes of a member (a view into the archive for stored members). */
  read(name: string): Uint8Array {
    const member = this.members.get(name);
    if (member === undefined) throw this.fail(`zip member "${printable(name)}" is missing`);
    if ((member.flags & 1) !== 0) throw this.fail(`zip member "${printable(name)}" is encrypted, which is not supported`);
    const start = this.dataStart(member);
    if (start + member.compressedSize > this.bytes.length) {
      throw this.fail(`zip member "${printable(name)}" runs past the end of the file (truncated archive?)`);
    }
    const raw = this.bytes.subarray(start, start + member.compressedSize);
    if (member.method === 0) {
      if (member.compressedSize !== member.uncompressedSize) {
        throw this.fail(`stored zip member "${printable(name)}" has compressed size ${member.compressedSize} but uncompressed size ${member.uncompressedSize}`);
      }
      return raw;
    }
    if (member.method === 8) return this.inflate(member, raw);
    throw this.fail(`zip member "${printable(name)}" uses compression method ${member.method}, which is not supported (only stored and deflate)`);
  }

  private dataStart(member: ZipMember): number {
    const offset = member.localHeaderOffset;
    if (offset + LOCAL_HEADER_SIZE > this.bytes.length) {
      throw this.fail(`local header of zip member "${printable(member.name)}" lies past the end of the file (truncated archive?)`);
    }
    const view = viewOf(this.bytes);
    if (view.getUint32(offset, true) !== LOCAL_SIGNATURE) {
      throw this.fail(`zip member "${printable(member.name)}" has no local header at offset ${offset}`);
    }
    return offset + LOCAL_HEADER_SIZE + view.getUint16(offset + 26, true) + view.getUint16(offset + 28, true);
  }

  private inflate(member: ZipMember, raw: Uint8Array): Uint8Array {
    const name = printable(member.name);
    if (member.uncompressedSize > member.compressedSize * MAX_DEFLATE_RATIO + 1024) {
      throw this.fail(
        `deflated zip member "${name}" claims ${member.uncompressedSize} bytes from ${member.compressedSize} compressed bytes, which is impossible`,
      );
    }
    if (member.uncompressedSize === 0) return new Uint8Array(0);
    let out: Uint8Array;
    try {
      out = inflateRawSync(raw, { maxOutputLength: member.uncompressedSize });
    } catch (error) {
      throw this.fail(`deflated zip member "${name}" cannot be inflated (${printable(String((error as Error).message ?? error))})`);
    }
    if (out.length !== member.uncompressedSize) {
      throw this.fail(`deflated zip member "${name}" inflates to ${out.length} bytes, not the declared ${member.uncompressedSize}`);
    }
    return out;
  }

  private fail(message: string): Error {
    return torchFormatError(this.label, message);
  }
}

/** Parses the end records and central directory of an in-memory zip archive (classic or zip64). */
export function openZipArchive(bytes: Uint8Array, label: string): ZipArchive {
  const fail = (message: string): Error => torchFormatError(label, message);
  const eocd = findEndOfCentralDirectory(bytes);
  if (eocd < 0) {
    const hint = bytes[0] === 0x80 ? " (it starts like a bare pickle: the pre-1.6 torch.save format is not supported)" : "";
    throw fail(`no zip end-of-central-directory record found: the file is truncated or not a zip archive${hint}`);
  }
  const location = locateCentralDirectory(bytes, eocd, fail);
  return new ZipArchive(bytes, label, readCentralDirectory(bytes, location, fail));
}

function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function readU64(view: DataView, offset: number, what: string, fail: (m: string) => Error): number {
  const value = view.getBigUint64(offset, true);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw fail(`${what} ${value} is too large`);
  return Number(value);
}

function findEndOfCentralDirectory(bytes: Uint8Array): number {
  if (bytes.length < EOCD_SIZE) return -1;
  const view = viewOf(bytes);
  const lowest = Math.max(0, bytes.length - EOCD_SIZE - MAX_COMMENT);
  for (let pos = bytes.length - EOCD_SIZE; pos >= lowest; pos--) {
    if (view.getUint32(pos, true) === EOCD_SIGNATURE && pos + EOCD_SIZE + view.getUint16(pos + 20, true) <= bytes.length) return pos;
  }
  return -1;
}

function locateCentralDirectory(bytes: Uint8Array, eocd: number, fail: (m: string) => Error): DirectoryLocation {
  const view = viewOf(bytes);
  if (view.getUint16(eocd + 4, true) !== 0 || view.getUint16(eocd + 6, true) !== 0) {
    throw fail("multi-disk zip archives are not supported");
  }
  const classic = {
    entryCount: view.getUint16(eocd + 10, true),
    size: view.getUint32(eocd + 12, true),
    offset: view.getUint32(eocd + 16, true),
    end: eocd,
  };
  const locator = eocd - 20;
  if (locator < 0 || view.getUint32(locator, true) !== ZIP64_LOCATOR_SIGNATURE) {
    if (classic.entryCount === U16_MAX || classic.size === U32_MAX || classic.offset === U32_MAX) {
      throw fail("zip end record points to zip64 values but the zip64 locator is missing (truncated archive?)");
    }
    return checkLocation(classic, bytes.length, fail);
  }
  const record = readU64(view, locator + 8, "zip64 end record offset", fail);
  if (record + 56 > locator || view.getUint32(record, true) !== ZIP64_EOCD_SIGNATURE) {
    throw fail(`zip64 end-of-central-directory record not found at offset ${record}`);
  }
  const zip64 = {
    entryCount: readU64(view, record + 32, "zip entry count", fail),
    size: readU64(view, record + 40, "zip central directory size", fail),
    offset: readU64(view, record + 48, "zip central directory offset", fail),
    end: record,
  };
  return checkLocation(zip64, bytes.length, fail);
}

function checkLocation(location: DirectoryLocation, fileSize: number, fail: (m: string) => Error): DirectoryLocation {
  if (location.offset + location.size > location.end || location.end > fileSize) {
    throw fail(`zip central directory (offset ${location.offset}, ${location.size} bytes) lies outside the archive (truncated archive?)`);
  }
  if (location.entryCount * CENTRAL_HEADER_SIZE > location.size) {
    throw fail(`zip end record claims ${location.entryCount} members, more than a ${location.size}-byte central directory can hold`);
  }
  return location;
}

function readCentralDirectory(bytes: Uint8Array, location: DirectoryLocation, fail: (m: string) => Error): Map<string, ZipMember> {
  const view = viewOf(bytes);
  const decoder = new TextDecoder("utf-8");
  const members = new Map<string, ZipMember>();
  const end = location.offset + location.size;
  let pos = location.offset;
  for (let index = 0; index < location.entryCount; index++) {
    if (pos + CENTRAL_HEADER_SIZE > end || view.getUint32(pos, true) !== CENTRAL_SIGNATURE) {
      throw fail(`zip central directory entry ${index} is missing or damaged at offset ${pos}`);
    }
    const nameLength = view.getUint16(pos + 28, true);
    const extraLength = view.getUint16(pos + 30, true);
    const commentLength = view.getUint16(pos + 32, true);
    const next = pos + CENTRAL_HEADER_SIZE + nameLength + extraLength + commentLength;
    if (next > end) throw fail(`zip central directory entry ${index} runs past the end of the central directory`);
    const nameStart = pos + CENTRAL_HEADER_SIZE;
    const member: ZipMember = {
      name: decoder.decode(bytes.subarray(nameStart, nameStart + nameLength)),
      flags: view.getUint16(pos + 8, true),
      method: view.getUint16(pos + 10, true),
      compressedSize: view.getUint32(pos + 20, true),
      uncompressedSize: view.getUint32(pos + 24, true),
      localHeaderOffset: view.getUint32(pos + 42, true),
    };
    applyZip64Extra(view, nameStart + nameLength, extraLength, member, fail);
    if (members.has(member.name)) throw fail(`zip member "${printable(member.name)}" appears twice`);
    members.set(member.name, member);
    pos = next;
  }
  return members;
}

/** Replaces 0xFFFFFFFF sizes and offsets with the 64-bit values of the zip64 extra field (id 0x0001). */
function applyZip64Extra(view: DataView, start: number, length: number, member: ZipMember, fail: (m: string) => Error): void {
  const wanted = (["uncompressedSize", "compressedSize", "localHeaderOffset"] as const).filter((key) => member[key] === U32_MAX);
  if (wanted.length === 0) return;
  for (let pos = start; pos + 4 <= start + length; ) {
    const id = view.getUint16(pos, true);
    const size = view.getUint16(pos + 2, true);
    if (pos + 4 + size > start + length) break;
    if (id === 0x0001) {
      if (size < wanted.length * 8) break;
      wanted.forEach((key, i) => {
        member[key] = readU64(view, pos + 4 + i * 8, `zip64 ${key} of "${printable(member.name)}"`, fail);
      });
      return;
    }
    pos += 4 + size;
  }
  throw fail(`zip member "${printable(member.name)}" needs a zip64 extra field, but it is missing or too short`);
}
