import { stat } from "node:fs/promises";
import type { OnnxLoraSession } from "@lowrank/backend-onnx";
import { LowrankError, readAdapter, type LoraAdapter, type Logger } from "@lowrank/core";
import { badRequest, notFound, overloaded, ServeError } from "./serve-error.js";

/** Where an adapter comes from: a PEFT adapter folder, or a Hub id ("org/name[@revision]"). */
export type AdapterSource = string;

/**
 * The adapters a server knows (by name, from a folder or a Hub id) and the few it holds in its
 * session: at most `max`, the least recently used idle one unloaded to make room — and loaded
 * again from its folder when a request asks for it (vLLM's max_loras over its known adapters).
 */
export class AdapterPool {
  private readonly known = new Map<string, { source: AdapterSource; dir: string }>();
  /** Loaded adapters, least recently used first. */
  private readonly loaded = new Set<string>();
  private readonly inUse = new Map<string, number>();

  private session: OnnxLoraSession | undefined;

  constructor(private readonly options: { max: number; resolve?: (location: string) => Promise<string>; logger: Logger }) {}

  /**
   * Reads the adapters known from the start (before the session exists: it is created with them).
   * @throws ServeError 400 for a bad name or location, or more adapters than `max`.
   */
  async readInitial(sources: Record<string, AdapterSource>): Promise<Map<string, { source: AdapterSource; dir: string; adapter: LoraAdapter }>> {
    const entries = Object.entries(sources);
    if (entries.length > this.options.max) throw badRequest(`${entries.length} adapters given, but at most ${this.options.max} are loaded at once`);
    const read = new Map<string, { source: AdapterSource; dir: string; adapter: LoraAdapter }>();
    for (const [name, source] of entries) {
      checkName(name);
      const dir = await this.locate(source);
      read.set(name, { source, dir, adapter: await readAdapterAt(name, dir) });
    }
    return read;
  }

  /** Takes the session, whose creation loaded `initial`. */
  attach(session: OnnxLoraSession, initial: ReadonlyMap<string, { source: AdapterSource; dir: string }>): void {
    this.session = session;
    for (const [name, { source, dir }] of initial) {
      this.known.set(name, { source, dir });
      this.loaded.add(name);
    }
  }

  /** Known adapter names, in the order they were registered. */
  names(): string[] {
    return [...this.known.keys()];
  }

  has(name: string): boolean {
    return this.known.has(name);
  }

  /** Where a known adapter came from (its folder or Hub id, as given). */
  sourceOf(name: string): AdapterSource | undefined {
    return this.known.get(name)?.source;
  }

  /**
   * Makes an adapter known under `name` and loads it (checking it binds to the model).
   * @throws ServeError 400 for a name taken, a location that does not resolve or an adapter that does not bind.
   */
  async register(name: string, source: AdapterSource): Promise<void> {
    checkName(name);
    if (this.known.has(name)) throw badRequest(`an adapter named "${name}" is already loaded`, "adapter_exists");
    const dir = await this.locate(source);
    this.known.set(name, { source, dir });
    try {
      await this.load(name);
    } catch (error) {
      this.known.delete(name);
      throw error;
    }
  }

  /**
   * Forgets an adapter (and unloads it).
   * @throws ServeError 404 for an unknown name, 409 while requests use it.
   */
  unregister(name: string): void {
    if (!this.known.has(name)) throw notFound(`no adapter named "${name}"`);
    const users = this.inUse.get(name) ?? 0;
    if (users > 0) throw new ServeError(409, "invalid_request_error", "adapter_in_use", `adapter "${name}" is in use by ${users} request(s)`);
    this.known.delete(name);
    if (this.loaded.delete(name)) this.session!.unloadAdapter(name);
  }

  /** Marks an adapter used by one more request, loading it first if it was unloaded. @throws ServeError 404 for an unknown name. */
  async acquire(name: string): Promise<void> {
    if (!this.known.has(name)) throw notFound(`The model \`${name}\` does not exist.`);
    if (!this.loaded.has(name)) await this.load(name);
    // Most recently used last.
    this.loaded.delete(name);
    this.loaded.add(name);
    this.inUse.set(name, (this.inUse.get(name) ?? 0) + 1);
  }

  release(name: string): void {
    const users = (this.inUse.get(name) ?? 1) - 1;
    if (users > 0) this.inUse.set(name, users);
    else this.inUse.delete(name);
  }

  private async load(name: string): Promise<void> {
    while (this.loaded.size >= this.options.max) {
      const idle = [...this.loaded].find((n) => !this.inUse.has(n));
      if (idle === undefined) throw overloaded(`all ${this.options.max} adapter slots are in use by running requests`);
      this.loaded.delete(idle);
      this.session!.unloadAdapter(idle);
      this.options.logger.info(`serve: unloaded adapter "${idle}" (least recently used) to load "${name}"`);
    }
    const { dir } = this.known.get(name)!;
    const adapter = await readAdapterAt(name, dir);
    try {
      this.session!.loadAdapter(name, adapter);
    } catch (error) {
      if (error instanceof LowrankError) throw badRequest(`adapter "${name}" (${dir}): ${error.message}`, "invalid_adapter");
      throw error;
    }
    this.loaded.add(name);
  }

  private async locate(source: AdapterSource): Promise<string> {
    if (await stat(source).catch(() => undefined)) return source;
    if (!this.options.resolve) throw badRequest(`lora_path "${source}": no such folder`, "invalid_adapter");
    try {
      return await this.options.resolve(source);
    } catch (error) {
      throw badRequest(`lora_path "${source}": ${(error as Error).message.split("\n")[0]}`, "invalid_adapter");
    }
  }
}

function checkName(name: string): void {
  if (!/^[\w.@/:-]{1,128}$/.test(name)) throw badRequest(`adapter name "${name}": use 1–128 letters, digits and . _ - / @ :`);
}

/** A PEFT adapter folder, read; its problems as a 400. */
async function readAdapterAt(name: string, dir: string): Promise<LoraAdapter> {
  try {
    return await readAdapter(dir);
  } catch (error) {
    if (error instanceof LowrankError) throw badRequest(`adapter "${name}": ${error.message}`, "invalid_adapter");
    throw error;
  }
}
