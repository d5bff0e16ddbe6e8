// An example third-party backend for lowrank.
//
// A plugin is a module that exports `register(registry)`. The lowrank CLI loads it with
// `--plugin <path-or-package>` (or LOWRANK_PLUGINS) and then finds the backend only through the
// registry, by name or by capability. This one merges adapters on the CPU by calling core's merge,
// as every backend must: the LoRA formulas live once, in @lowrank/core.
import { mergeCheckpoint } from "@lowrank/core";

/** @returns {import("@lowrank/core").LowrankBackend} */
export function createExampleBackend() {
  let device;
  return {
    name: "example-cpu",
    capabilities: ["merge"],
    devices: ["cpu"],
    async init() {
      device = "cpu";
      return { device, note: "example plugin from examples/custom-backend" };
    },
    async merge({ baseDir, adapter, outDir, safe }) {
      if (!device) throw new Error("example-cpu: init() was not called");
      return mergeCheckpoint({ baseDir, adapter, outDir, safe });
    },
  };
}

/** @param {import("@lowrank/core").BackendRegistry} registry */
export function register(registry) {
  registry.register("example-cpu", createExampleBackend, { priority: 1 });
}
