import "reflect-metadata";
import { container as rootContainer, instanceCachingFactory, type DependencyContainer } from "tsyringe";
import { LowrankError } from "../errors/lowrank-error.js";
import { silentLogger, type Logger } from "../logger.js";
import type { BackendCapability, BackendFactory, BackendInitResult, LowrankBackend, TrainParams } from "./backend.js";

interface Registration {
  name: string;
  priority: number;
  token: symbol;
}

/** A backend that initialised, with what its init reported. */
export interface ResolvedBackend {
  backend: LowrankBackend;
  init: BackendInitResult;
  /** Backends of higher priority that declined the job, with their reasons (resolveFor only). */
  declined?: { name: string; reason: string }[];
}

/**
 * Backends by name, on a tsyringe container of its own (no global state): register with a priority,
 * resolve by name or by the best available for a capability. Backends are created and initialised
 * lazily and once; a failure is remembered, the next candidate is tried, and when none works one
 * error lists each backend's reason.
 */
export class BackendRegistry {
  private readonly registrations = new Map<string, Registration>();
  private readonly resolved = new Map<string, Promise<ResolvedBackend>>();
  private readonly failures = new Map<string, string>();
  readonly container: DependencyContainer;

  constructor(options: { container?: DependencyContainer; logger?: Logger } = {}) {
    this.container = (options.container ?? rootContainer).createChildContainer();
    this.logger = options.logger ?? silentLogger;
  }

  private readonly logger: Logger;

  /**
   * Registers a backend factory. Names are lowercase words (`tfjs`, `onnx`, `my-backend`).
   * @throws LowrankError BACKEND_INVALID on a bad name, a conflicting registration or a bad priority.
   */
  register(name: string, factory: BackendFactory, options: { priority?: number } = {}): void {
    if (!/^[a-z][a-z0-9-]*$/.test(name))
      throw new LowrankError("BACKEND_INVALID", `backend name ${JSON.stringify(name)} must be lowercase letters, digits and '-'`);
    if (typeof factory !== "function") throw new LowrankError("BACKEND_INVALID", `backend "${name}": the factory is not a function`);
    const priority = options.priority ?? 0;
    if (!Number.isFinite(priority)) throw new LowrankError("BACKEND_INVALID", `backend "${name}": priority must be a finite number`);
    if (this.registrations.has(name)) throw new LowrankError("BACKEND_INVALID", `backend "${name}" is already registered`);
    const token = Symbol(`lowrank.backend.${name}`);
    this.container.register(token, { useFactory: instanceCachingFactory(() => factory()) });
    this.registrations.set(name, { name, priority, token });
  }

  /** Registered names, highest priority first. */
  names(): string[] {
    return [...this.registrations.values()].sort((a, b) => b.priority - a.priority).map((r) => r.name);
  }

  /** Creates and initialises one backend by name. @throws LowrankError BACKEND_UNAVAILABLE */
  async resolve(name: string): Promise<ResolvedBackend> {
    const registration = this.registrations.get(name);
    if (!registration) {
      throw new LowrankError("BACKEND_UNAVAILABLE", `backend "${name}" is not registered (registered: ${this.names().join(", ") || "none"})`, { usage: true });
    }
    let pending = this.resolved.get(name);
    if (!pending) {
      pending = this.initialise(registration);
      this.resolved.set(name, pending);
    }
    return pending;
  }

  private async initialise(registration: Registration): Promise<ResolvedBackend> {
    try {
      const backend = await Promise.resolve(this.container.resolve<LowrankBackend | Promise<LowrankBackend>>(registration.token));
      checkBackendShape(backend, registration.name);
      const init = await backend.init({ logger: this.logger });
      return { backend, init };
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      this.failures.set(registration.name, reason);
      // A malformed backend is the plugin's fault, not the machine's: keep its own code.
      if (error instanceof LowrankError && error.code === "BACKEND_INVALID") throw error;
      throw new LowrankError("BACKEND_UNAVAILABLE", `backend "${registration.name}" cannot run here: ${reason}`, { cause: error });
    }
  }

  /**
   * The highest-priority backend that has `capability`, initialises and does not decline the job
   * (LowrankBackend.declineReason, asked with the `model` and a training run's parameters when
   * given), or the named one when `preferred` is given.
   * Failures are logged as warnings; declines are returned with the backend that took the job
   * (`declined`); either way the next backend is tried.
   * @throws LowrankError BACKEND_UNAVAILABLE listing every backend's reason.
   */
  async resolveFor(capability: BackendCapability, preferred?: string, model?: string, train?: TrainParams): Promise<ResolvedBackend> {
    if (preferred !== undefined) {
      const resolved = await this.resolve(preferred);
      if (!resolved.backend.capabilities.includes(capability)) {
        throw new LowrankError("BACKEND_UNAVAILABLE", `backend "${preferred}" cannot ${capability} (it can: ${resolved.backend.capabilities.join(", ")})`, {
          usage: true,
        });
      }
      return resolved;
    }
    const reasons: string[] = [];
    const declines: { name: string; reason: string }[] = [];
    for (const name of this.names()) {
      let resolved: ResolvedBackend;
      try {
        resolved = await this.resolve(name);
      } catch (error) {
        this.logger.warn(`backend "${name}" unavailable, trying the next: ${this.failures.get(name) ?? (error as Error).message}`);
        reasons.push(`${name}: ${this.failures.get(name) ?? (error as Error).message}`);
        continue;
      }
      if (!resolved.backend.capabilities.includes(capability)) {
        reasons.push(`${name}: cannot ${capability}`);
        continue;
      }
      const declined = await resolved.backend.declineReason?.({ capability, ...(model === undefined ? {} : { model }), ...(train ? { train } : {}) });
      if (declined === undefined) return declines.length > 0 ? { ...resolved, declined: declines } : resolved;
      declines.push({ name, reason: declined });
      reasons.push(`${name}: ${declined}`);
    }
    throw new LowrankError("BACKEND_UNAVAILABLE", `no backend can ${capability} here${reasons.length ? ` (${reasons.join("; ")})` : " (none registered)"}`);
  }
}

function checkBackendShape(backend: unknown, name: string): asserts backend is LowrankBackend {
  const b = backend as Partial<LowrankBackend> | null;
  const problem =
    !b || typeof b !== "object"
      ? "the factory did not return an object"
      : b.name !== name
        ? `its name is ${JSON.stringify(b.name)}, registered as "${name}"`
        : !Array.isArray(b.capabilities)
          ? "`capabilities` is not an array"
          : typeof b.init !== "function"
            ? "`init` is not a function"
            : b.capabilities.includes("infer") && typeof b.predict !== "function"
              ? "it claims `infer` but has no `predict`"
              : b.capabilities.includes("merge") && typeof b.merge !== "function"
                ? "it claims `merge` but has no `merge`"
                : b.capabilities.includes("train") && typeof b.train !== "function"
                  ? "it claims `train` but has no `train`"
                  : b.capabilities.includes("generate") && typeof b.generate !== "function"
                    ? "it claims `generate` but has no `generate`"
                    : undefined;
  if (problem) throw new LowrankError("BACKEND_INVALID", `backend "${name}" is invalid: ${problem}`);
}
