// Shared tsup settings: ESM + CJS + .d.ts for every package.
import { defineConfig } from "tsup";

export function packageConfig(entry, extra = {}) {
  return defineConfig({
    entry,
    format: ["esm", "cjs"],
    dts: true,
    sourcemap: true,
    clean: true,
    target: "node20",
    splitting: false,
    ...extra,
  });
}
