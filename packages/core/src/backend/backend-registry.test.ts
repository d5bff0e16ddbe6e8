import { describe, expect, test } from "vitest";
import { LowrankError } from "../errors/lowrank-error.js";
import { captureLowrankError, captureLowrankRejection } from "../testing/capture-error.js";
import { memoryLogger } from "../logger.js";
import type { BackendCapability, BackendInitResult, BackendJob, LowrankBackend } from "./backend.js";
import { BackendRegistry } from "./backend-registry.js";

interface FakeOptions {
  capabilities?: BackendCapability[];
  initError?: string;
  device?: string;
}

/** A fake backend factory that counts how often it and the backend's init are called. */
function fake(name: string, options: FakeOptions = {}) {
  const calls = { factory: 0, init: 0 };
  const capabilities = options.capabilities ?? ["infer", "merge"];
  const factory = (): LowrankBackend => {
    calls.factory++;
    return {
      name,
      capabilities,
      devices: ["cpu"],
      init: async (): Promise<BackendInitResult> => {
        calls.init++;
        if (options.initError) throw new Error(options.initError);
        return { device: options.device ?? "cpu" };
      },
      predict: capabilities.includes("infer") ? async () => ({ logits: { data: new Float32Array(0), shape: [0] } }) : undefined,
      merge: capabilities.includes("merge") ? async () => ({}) as never : undefined,
      train: capabilities.includes("train") ? async function* () {} : undefined,
    };
  };
  return { factory, calls };
}

describe("register and resolve by name", () => {
  test("resolve creates and initialises the named backend", async () => {
    const registry = new BackendRegistry();
    const a = fake("alpha", { device: "cuda" });
    const b = fake("beta");
    registry.register("alpha", a.factory);
    registry.register("beta", b.factory);
    const resolved = await registry.resolve("alpha");
    expect(resolved.backend.name).toBe("alpha");
    expect(resolved.init).toEqual({ device: "cuda" });
    expect(a.calls).toEqual({ factory: 1, init: 1 });
    expect(b.calls).toEqual({ factory: 0, init: 0 });
  });

  test("the factory is not called until resolve, and only once", async () => {
    const registry = new BackendRegistry();
    const a = fake("alpha");
    registry.register("alpha", a.factory);
    expect(a.calls.factory).toBe(0);
    const [x, y] = await Promise.all([registry.resolve("alpha"), registry.resolve("alpha")]);
    const z = await registry.resolve("alpha");
    expect(x.backend).toBe(y.backend);
    expect(z.backend).toBe(x.backend);
    expect(a.calls).toEqual({ factory: 1, init: 1 });
  });

  test("an async factory works", async () => {
    const registry = new BackendRegistry();
    const a = fake("alpha");
    registry.register("alpha", async () => a.factory());
    expect((await registry.resolve("alpha")).backend.name).toBe("alpha");
  });

  test("init receives the registry's logger", async () => {
    const logger = memoryLogger();
    const registry = new BackendRegistry({ logger });
    registry.register("alpha", () => ({
      name: "alpha",
      capabilities: [],
      devices: [],
      init: async ({ logger: l }) => {
        l.info("hello from init");
        return { device: "cpu" };
      },
    }));
    await registry.resolve("alpha");
    expect(logger.infos).toEqual(["hello from init"]);
  });

  test("an unregistered name is BACKEND_UNAVAILABLE listing what is registered", async () => {
    const registry = new BackendRegistry();
    expect((await captureLowrankRejection(registry.resolve("tfjs"))).message).toBe('backend "tfjs" is not registered (registered: none)');
    registry.register("onnx", fake("onnx").factory, { priority: 1 });
    registry.register("tfjs-node", fake("tfjs-node").factory, { priority: 2 });
    const e = await captureLowrankRejection(registry.resolve("tfjs"));
    expect(e.code).toBe("BACKEND_UNAVAILABLE");
    expect(e.usage).toBe(true);
    expect(e.message).toBe('backend "tfjs" is not registered (registered: tfjs-node, onnx)');
  });
});

describe("priority", () => {
  test("names() lists the highest priority first, ties in registration order", () => {
    const registry = new BackendRegistry();
    registry.register("low", fake("low").factory, { priority: -5 });
    registry.register("default-a", fake("default-a").factory);
    registry.register("high", fake("high").factory, { priority: 10 });
    registry.register("default-b", fake("default-b").factory, { priority: 0 });
    registry.register("mid", fake("mid").factory, { priority: 2.5 });
    expect(registry.names()).toEqual(["high", "mid", "default-a", "default-b", "low"]);
  });

  test("resolveFor picks the highest-priority backend with the capability, touching no other", async () => {
    const registry = new BackendRegistry();
    const low = fake("low");
    const high = fake("high");
    registry.register("low", low.factory, { priority: 1 });
    registry.register("high", high.factory, { priority: 9 });
    expect((await registry.resolveFor("infer")).backend.name).toBe("high");
    expect(low.calls.factory).toBe(0);
  });
});

describe("resolveFor", () => {
  test("skips a backend whose init throws, remembers the failure, returns the next", async () => {
    const logger = memoryLogger();
    const registry = new BackendRegistry({ logger });
    const broken = fake("gpu", { initError: "no CUDA device" });
    const cpu = fake("cpu");
    registry.register("gpu", broken.factory, { priority: 10 });
    registry.register("cpu", cpu.factory, { priority: 1 });
    expect((await registry.resolveFor("infer")).backend.name).toBe("cpu");
    expect((await registry.resolveFor("merge")).backend.name).toBe("cpu");
    expect(broken.calls).toEqual({ factory: 1, init: 1 });
    expect(cpu.calls).toEqual({ factory: 1, init: 1 });
    expect(logger.warnings).toHaveLength(2);
    expect(logger.warnings[0]).toBe('backend "gpu" unavailable, trying the next: no CUDA device');
    // resolving the broken one by name gives the remembered reason without retrying
    const e = await captureLowrankRejection(registry.resolve("gpu"));
    expect(e.code).toBe("BACKEND_UNAVAILABLE");
    expect(e.message).toBe('backend "gpu" cannot run here: no CUDA device');
    expect(broken.calls.factory).toBe(1);
  });

  test("a factory that throws is skipped like a failing init", async () => {
    const registry = new BackendRegistry();
    let calls = 0;
    registry.register(
      "native",
      () => {
        calls++;
        throw new Error("cannot load native addon");
      },
      { priority: 5 },
    );
    registry.register("wasm", fake("wasm").factory);
    expect((await registry.resolveFor("infer")).backend.name).toBe("wasm");
    await captureLowrankRejection(registry.resolve("native"));
    expect(calls).toBe(1);
  });

  test("skips a backend that initialises but lacks the capability", async () => {
    const registry = new BackendRegistry();
    registry.register("trainer", fake("trainer", { capabilities: ["train"] }).factory, { priority: 3 });
    registry.register("runner", fake("runner", { capabilities: ["infer"] }).factory);
    expect((await registry.resolveFor("infer")).backend.name).toBe("runner");
    expect((await registry.resolveFor("train")).backend.name).toBe("trainer");
  });

  test("a backend that declines the job (for this model) is passed over, the reason returned; named, it is used as asked", async () => {
    const logger = memoryLogger();
    const registry = new BackendRegistry({ logger });
    const picky = fake("picky");
    const backend = (await picky.factory()) as LowrankBackend;
    const asked: BackendJob[] = [];
    backend.declineReason = async (job) => {
      asked.push(job);
      return job.model?.endsWith(".bin") ? "no graph builder for this model" : undefined;
    };
    registry.register("picky", () => backend, { priority: 9 });
    registry.register("other", fake("other").factory, { priority: 1 });
    expect((await registry.resolveFor("infer", undefined, "m.onnx")).backend.name).toBe("picky");
    const passedOver = await registry.resolveFor("infer", undefined, "m.bin");
    expect(passedOver.backend.name).toBe("other");
    expect(passedOver.declined).toEqual([{ name: "picky", reason: "no graph builder for this model" }]);
    expect(asked).toEqual([
      { capability: "infer", model: "m.onnx" },
      { capability: "infer", model: "m.bin" },
    ]);
    expect(logger.infos).toEqual([]);
    expect((await registry.resolveFor("infer", "picky", "m.bin")).backend.name).toBe("picky");
    expect((await registry.resolveFor("infer")).backend.name).toBe("picky");
    expect(asked.at(-1)).toEqual({ capability: "infer" });
  });

  test("when none works, one error lists every backend's reason", async () => {
    const registry = new BackendRegistry();
    registry.register("a", fake("a", { initError: "boom" }).factory, { priority: 3 });
    registry.register("b", fake("b", { capabilities: ["train"] }).factory, { priority: 2 });
    registry.register(
      "c",
      () => {
        throw new Error("missing dependency");
      },
      { priority: 1 },
    );
    registry.register("d", () => ({ name: "wrong", capabilities: [], devices: [], init: async () => ({ device: "cpu" }) }));
    const e = await captureLowrankRejection(registry.resolveFor("merge"));
    expect(e.code).toBe("BACKEND_UNAVAILABLE");
    expect(e.message).toBe(
      'no backend can merge here (a: boom; b: cannot merge; c: missing dependency; d: backend "d" is invalid: its name is "wrong", registered as "d")',
    );
    expect(e.message).not.toMatch(/\n/);
  });

  test("with no backends the error says none are registered", async () => {
    const e = await captureLowrankRejection(new BackendRegistry().resolveFor("infer"));
    expect(e.message).toBe("no backend can infer here (none registered)");
  });

  test("a preferred backend is used, or refused when it lacks the capability", async () => {
    const registry = new BackendRegistry();
    registry.register("best", fake("best").factory, { priority: 100 });
    registry.register("trainer", fake("trainer", { capabilities: ["train"] }).factory);
    expect((await registry.resolveFor("train", "trainer")).backend.name).toBe("trainer");
    const e = await captureLowrankRejection(registry.resolveFor("infer", "trainer"));
    expect(e.code).toBe("BACKEND_UNAVAILABLE");
    expect(e.usage).toBe(true);
    expect(e.message).toBe('backend "trainer" cannot infer (it can: train)');
    expect((await captureLowrankRejection(registry.resolveFor("infer", "nope"))).message).toMatch(/^backend "nope" is not registered/);
  });
});

describe("invalid registrations", () => {
  test.each(["", "Tfjs", "1onnx", "my_backend", "a b", "-x", "tfjs.node", "ü"])("name %j → BACKEND_INVALID", (name) => {
    const e = captureLowrankError(() => new BackendRegistry().register(name, fake(name).factory));
    expect(e.code).toBe("BACKEND_INVALID");
    expect(e.message).toBe(`backend name ${JSON.stringify(name)} must be lowercase letters, digits and '-'`);
  });

  test.each(["tfjs", "tfjs-node", "onnx2", "a", "my-backend-3"])("name %j is accepted", (name) => {
    const registry = new BackendRegistry();
    registry.register(name, fake(name).factory);
    expect(registry.names()).toEqual([name]);
  });

  test("a duplicate registration → BACKEND_INVALID, the first one stays", async () => {
    const registry = new BackendRegistry();
    const first = fake("onnx", { device: "first" });
    registry.register("onnx", first.factory);
    const e = captureLowrankError(() => registry.register("onnx", fake("onnx", { device: "second" }).factory, { priority: 5 }));
    expect(e.code).toBe("BACKEND_INVALID");
    expect(e.message).toBe('backend "onnx" is already registered');
    expect((await registry.resolve("onnx")).init.device).toBe("first");
  });

  test.each([NaN, Infinity, -Infinity])("priority %s → BACKEND_INVALID", (priority) => {
    const registry = new BackendRegistry();
    expect(captureLowrankError(() => registry.register("x", fake("x").factory, { priority })).code).toBe("BACKEND_INVALID");
    expect(registry.names()).toEqual([]);
  });

  test("a factory that is not a function → BACKEND_INVALID", () => {
    const e = captureLowrankError(() => new BackendRegistry().register("x", {} as never));
    expect(e.code).toBe("BACKEND_INVALID");
    expect(e.message).toBe('backend "x": the factory is not a function');
  });

  const base = {
    name: "x",
    capabilities: ["infer", "merge"],
    devices: ["cpu"],
    init: async () => ({ device: "cpu" }),
    predict: async () => ({}),
    merge: async () => ({}),
  };
  test.each([
    ["null", null, "the factory did not return an object"],
    ["a string", "x", "the factory did not return an object"],
    ["a wrong name", { ...base, name: "y" }, 'its name is "y", registered as "x"'],
    ["capabilities not an array", { ...base, capabilities: "infer" }, "`capabilities` is not an array"],
    ["no init", { ...base, init: undefined }, "`init` is not a function"],
    ["infer without predict", { ...base, predict: undefined }, "it claims `infer` but has no `predict`"],
    ["merge without merge", { ...base, merge: undefined }, "it claims `merge` but has no `merge`"],
    ["generate without generate", { ...base, capabilities: ["generate"] }, "it claims `generate` but has no `generate`"],
  ])("a backend with %s is rejected at resolve with BACKEND_INVALID", async (_what, backend, problem) => {
    const registry = new BackendRegistry();
    let inits = 0;
    registry.register("x", () => {
      inits++;
      return backend as never;
    });
    const e = await captureLowrankRejection(registry.resolve("x"));
    expect(e).toBeInstanceOf(LowrankError);
    expect(e.code).toBe("BACKEND_INVALID");
    expect(e.message).toBe(`backend "x" is invalid: ${problem}`);
    await captureLowrankRejection(registry.resolve("x"));
    expect(inits).toBe(1);
  });

  test("an invalid backend is skipped by resolveFor", async () => {
    const registry = new BackendRegistry();
    registry.register("x", () => ({ ...base, predict: undefined }) as never, { priority: 1 });
    registry.register("ok", fake("ok").factory);
    expect((await registry.resolveFor("infer")).backend.name).toBe("ok");
  });
});

describe("no global state", () => {
  test("two registries are independent", async () => {
    const one = new BackendRegistry();
    const two = new BackendRegistry();
    const a1 = fake("shared", { device: "one" });
    const a2 = fake("shared", { device: "two" });
    one.register("shared", a1.factory);
    two.register("shared", a2.factory); // no duplicate error across registries
    one.register("only-one", fake("only-one").factory);
    expect(two.names()).toEqual(["shared"]);
    expect((await one.resolve("shared")).init.device).toBe("one");
    expect(a2.calls.factory).toBe(0);
    expect((await two.resolve("shared")).init.device).toBe("two");
    expect(a1.calls.factory).toBe(1);
    await captureLowrankRejection(two.resolve("only-one"));
  });

  test("a failure in one registry is not remembered by another", async () => {
    const one = new BackendRegistry();
    const two = new BackendRegistry();
    one.register("x", fake("x", { initError: "down" }).factory);
    two.register("x", fake("x").factory);
    await captureLowrankRejection(one.resolve("x"));
    expect((await two.resolve("x")).backend.name).toBe("x");
  });

  test("registries sharing a parent container stay independent", async () => {
    const parent = new BackendRegistry();
    const one = new BackendRegistry({ container: parent.container });
    const two = new BackendRegistry({ container: parent.container });
    const f1 = fake("x", { device: "one" });
    const f2 = fake("x", { device: "two" });
    one.register("x", f1.factory);
    two.register("x", f2.factory);
    expect(parent.names()).toEqual([]);
    expect((await two.resolve("x")).init.device).toBe("two");
    expect((await one.resolve("x")).init.device).toBe("one");
    expect(one.container).not.toBe(two.container);
  });
});
