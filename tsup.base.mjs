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

/**
 * A package's browser entries (the "browser" export condition): ESM for bundlers, platform browser.
 * `removeNodeProtocol: false` keeps `node:` imports as they are, so esbuild fails the build on any
 * Node built-in an entry reaches instead of leaving an import the browser cannot resolve.
 */
export function browserConfig(entry, extra = {}) {
  return defineConfig({
    entry,
    format: ["esm"],
    dts: true,
    sourcemap: true,
    clean: false,
    platform: "browser",
    target: "es2022",
    removeNodeProtocol: false,
    splitting: true,
    ...extra,
  });
}
