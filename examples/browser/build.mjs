// Bundles the page with esbuild (the workspace's bundler, under tsup): src/main.ts and everything it
// imports — lowrank's browser entries and onnxruntime-web — into dist/app.js, beside index.html and
// onnxruntime-web's WebAssembly files (dist/ort/). Nothing comes from a CDN. Prints the sizes.
import { copyFile, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";
import { BROWSER_PACKAGES, measureBundle } from "./bundle-sizes.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(here, "dist");
const ortDist = path.dirname(createRequire(import.meta.url).resolve("onnxruntime-web/ort-wasm-simd-threaded.wasm"));
// The default onnxruntime-web build runs WebAssembly and WebGPU (JSEP); its loader is in the bundle.
const ORT_FILES = ["ort-wasm-simd-threaded.jsep.wasm", "ort-wasm-simd-threaded.jsep.mjs"];

await rm(dist, { recursive: true, force: true });
await mkdir(path.join(dist, "ort"), { recursive: true });
const result = await build({
  entryPoints: [path.join(here, "src/main.ts")],
  outfile: path.join(dist, "app.js"),
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  minify: true,
  sourcemap: true,
  metafile: true,
  logLevel: "warning",
  // Not the root tsconfig's paths (they point at packages' sources): the packages' built browser exports.
  tsconfigRaw: { compilerOptions: {} },
});
const nodeInputs = Object.keys(result.metafile.inputs).filter((p) => p.startsWith("node:") || /(^|\/)node_modules\/@types\/node\//.test(p));
if (nodeInputs.length > 0) throw new Error(`examples/browser: the page bundle reaches Node built-ins: ${nodeInputs.join(", ")}`);
await copyFile(path.join(here, "index.html"), path.join(dist, "index.html"));
for (const file of ORT_FILES) await copyFile(path.join(ortDist, file), path.join(dist, "ort", file));
const app = await readFile(path.join(dist, "app.js"));
const kb = (n) => `${(n / 1024).toFixed(0)} KB`;
const sizes = [{ name: "examples/browser dist/app.js", bytes: app.byteLength, gzip: gzipSync(app).byteLength }];
for (const name of BROWSER_PACKAGES) sizes.push(await measureBundle(name));
await writeFile(path.join(dist, "sizes.json"), `${JSON.stringify(sizes, null, 2)}\n`);
for (const s of sizes) console.log(`${s.name}: ${kb(s.bytes)} minified, ${kb(s.gzip)} gzip`);
