import { existsSync, statSync } from "node:fs";
import path from "node:path";
import { expect, test } from "vitest";
import { BROWSER_PACKAGES, measureBundle } from "../../examples/browser/bundle-sizes.mjs";
import { repoRoot } from "../cli-helpers.js";

// Upper bounds on the browser bundles (minified + gzip), a little above today's sizes so that growth
// is a decision: core 51 KB, backend-onnx 202 KB (of which onnxruntime-web's JavaScript ~110 KB).
const GZIP_LIMITS: Record<string, number> = { "@lowrank/core": 64 * 1024, "@lowrank/backend-onnx": 240 * 1024 };

test.each(BROWSER_PACKAGES)(
  "%s's browser bundle reaches no Node built-in, no Node global and no TensorFlow.js, and stays small",
  async (name) => {
    const size = await measureBundle(name);
    expect(size.nodeBuiltins).toEqual([]);
    expect(size.globals).toEqual([]);
    expect(size.tfjs).toEqual([]);
    expect(size.gzip).toBeGreaterThan(10_000);
    expect(size.gzip).toBeLessThan(GZIP_LIMITS[name]!);
  },
  60_000,
);

test("the built page holds everything it loads: index.html, app.js and onnxruntime-web's WebAssembly (no CDN)", () => {
  const dist = path.join(repoRoot, "examples", "browser", "dist");
  for (const file of ["index.html", "app.js", "ort/ort-wasm-simd-threaded.jsep.wasm", "ort/ort-wasm-simd-threaded.jsep.mjs"]) {
    expect(existsSync(path.join(dist, file)), file).toBe(true);
  }
  expect(statSync(path.join(dist, "ort/ort-wasm-simd-threaded.jsep.wasm")).size).toBeGreaterThan(1_000_000);
});
