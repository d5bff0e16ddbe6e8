// Sizes of lowrank's browser entries as an app bundles them: each of @lowrank/core and
// @lowrank/backend-onnx (with everything they import, onnxruntime-web's JavaScript included, its
// .wasm not) bundled alone by esbuild for the browser, minified, then gzipped. Also what each bundle
// reached: Node built-ins (none allowed) and TensorFlow.js (none unless asked for).
import path from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";

const here = path.dirname(fileURLToPath(import.meta.url));

/** @returns {Promise<{ name: string, bytes: number, gzip: number, nodeBuiltins: string[], tfjs: string[], globals: string[] }>} */
export async function measureBundle(name) {
  // One package's browser entry as an app imports it (not the root tsconfig's paths to sources).
  const entry = {
    stdin: { contents: `export * from "${name}";`, resolveDir: here, loader: "js" },
    bundle: true,
    write: false,
    format: "esm",
    platform: "browser",
    logLevel: "silent",
    tsconfigRaw: { compilerOptions: {} },
  };
  const result = await build({ ...entry, target: "es2022", minify: true, metafile: true });
  const code = result.outputFiles[0].contents;
  const inputs = Object.keys(result.metafile.inputs);
  // lowrank's own browser code alone (its dependencies, which guard their Node paths, left out).
  const others = {
    name: "others-external",
    setup(b) {
      b.onResolve({ filter: /^[^./]/ }, (args) => (args.path.startsWith("@lowrank/") ? undefined : { path: args.path, external: true }));
    },
  };
  const own = await build({ ...entry, plugins: [others] });
  const text = own.outputFiles.map((f) => f.text).join("\n");
  return {
    name,
    bytes: code.byteLength,
    gzip: gzipSync(code).byteLength,
    nodeBuiltins: inputs.filter((p) => p.startsWith("node:") || /\/node_modules\/@types\/node\//.test(p)),
    tfjs: inputs.filter((p) => p.includes("@tensorflow")),
    // Node's globals used by lowrank's own code (a bundler would not provide them).
    globals: ["Buffer.", "process.env", "process.pid", "__dirname"].filter((g) => text.includes(g)),
  };
}

export const BROWSER_PACKAGES = ["@lowrank/core", "@lowrank/backend-onnx"];
