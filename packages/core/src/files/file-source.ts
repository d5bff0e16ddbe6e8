import { LowrankError } from "../errors/lowrank-error.js";

/**
 * Where a model's or an adapter's files come from, by file name: a URL prefix, a Hub repository,
 * files the user dropped on a page, the origin-private file system — or a folder, in Node
 * (folderSource). Reading through it is how core stays free of Node built-ins in the browser.
 */
export interface FileSource {
  /** Names the source in messages (a URL, a folder). */
  readonly label: string;
  /**
   * A file's bytes, or undefined when the source has no such file.
   * @throws LowrankError IO_ERROR for any other failure (network, permission).
   */
  read(name: string): Promise<Uint8Array | undefined>;
}

/** How a file of a source is named in messages. */
export const fileLabel = (source: FileSource, name: string): string => (source.label.endsWith("/") ? `${source.label}${name}` : `${source.label}/${name}`);

/** What fileListSource needs of a File (a browser File, or anything with a name and bytes). */
export interface NamedBlob {
  readonly name: string;
  arrayBuffer(): Promise<ArrayBuffer>;
}

/** What opfsSource needs of a FileSystemDirectoryHandle. */
export interface DirectoryHandle {
  readonly name: string;
  getFileHandle(name: string): Promise<{ getFile(): Promise<{ arrayBuffer(): Promise<ArrayBuffer> }> }>;
}

export interface UrlSourceOptions {
  /** Sent as `Authorization: Bearer <token>` (a Hub token for private repositories). */
  token?: string;
  /** The fetch to use (default: the global one). */
  fetch?: typeof fetch;
}

/** Files under a URL prefix (`https://host/adapters/a/` + name); a 404 is an absent file. */
export function urlSource(base: string | URL, options: UrlSourceOptions = {}): FileSource {
  const prefix = String(base).endsWith("/") ? String(base) : `${String(base)}/`;
  const get = options.fetch ?? globalThis.fetch;
  return {
    label: prefix,
    async read(name) {
      const url = new URL(name, prefix.includes("://") ? prefix : new URL(prefix, globalThis.location?.href ?? "http://localhost/")).href;
      let response: Response;
      try {
        response = await get(url, options.token ? { headers: { authorization: `Bearer ${options.token}` } } : {});
      } catch (error) {
        throw new LowrankError("IO_ERROR", `${url}: cannot fetch (${(error as Error).message})`);
      }
      if (response.status === 404) return undefined;
      if (!response.ok) throw new LowrankError("IO_ERROR", `${url}: HTTP ${response.status}${response.status === 401 ? " (a token is needed)" : ""}`);
      return new Uint8Array(await response.arrayBuffer());
    },
  };
}

export interface HubSourceOptions extends UrlSourceOptions {
  /** A branch, tag or commit (default "main"). */
  revision?: string;
  /** The Hub's address (default https://huggingface.co; `lowrank hub serve` works too). */
  endpoint?: string;
}

/** A Hub repository's files at a revision, through its resolve URLs (`<endpoint>/<repo>/resolve/<revision>/<file>`). */
export function hubSource(repo: string, options: HubSourceOptions = {}): FileSource {
  if (!/^[\w.-]+\/[\w.-]+$/.test(repo)) throw new LowrankError("USAGE", `hub repository "${repo}": expected owner/name`);
  const endpoint = (options.endpoint ?? "https://huggingface.co").replace(/\/+$/, "");
  const revision = encodeURIComponent(options.revision ?? "main");
  return { ...urlSource(`${endpoint}/${repo}/resolve/${revision}/`, options), label: `${repo}@${options.revision ?? "main"}` };
}

/** Files picked or dropped on a page, by name (a folder's files keep their own names). */
export function fileListSource(files: Iterable<NamedBlob>, label = "dropped files"): FileSource {
  const byName = new Map<string, NamedBlob>();
  for (const file of files) byName.set(file.name.split("/").pop() ?? file.name, file);
  return {
    label,
    async read(name) {
      const file = byName.get(name);
      return file ? new Uint8Array(await file.arrayBuffer()) : undefined;
    },
  };
}

/** A directory of the origin-private file system (navigator.storage.getDirectory()). */
export function opfsSource(directory: DirectoryHandle): FileSource {
  return {
    label: `opfs:${directory.name}`,
    async read(name) {
      try {
        const file = await (await directory.getFileHandle(name)).getFile();
        return new Uint8Array(await file.arrayBuffer());
      } catch (error) {
        if ((error as Error).name === "NotFoundError") return undefined;
        throw new LowrankError("IO_ERROR", `opfs:${directory.name}/${name}: cannot read (${(error as Error).message})`);
      }
    },
  };
}

/** A file of a source as UTF-8 text, or undefined when absent. */
export async function readTextFrom(source: FileSource, name: string): Promise<string | undefined> {
  const bytes = await source.read(name);
  return bytes && new TextDecoder().decode(bytes);
}

/**
 * A JSON object file of a source (config.json, tokenizer.json …), or undefined when absent.
 * @throws LowrankError CHECKPOINT_INVALID naming the file when it is not valid JSON.
 */
export async function readJsonFrom(source: FileSource, name: string): Promise<Record<string, unknown> | undefined> {
  const text = await readTextFrom(source, name);
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch (error) {
    throw new LowrankError("CHECKPOINT_INVALID", `${fileLabel(source, name)}: not valid JSON (${(error as Error).message.split("\n")[0]})`);
  }
}
