import path from "node:path";
import { browserConfig, packageConfig } from "../../tsup.base.mjs";

/**
 * The browser build's two swaps: onnxruntime-web for onnxruntime-node (the same API, from
 * onnxruntime-common), and platform/files.browser.ts for platform/files.ts (no Node built-ins).
 */
const browserSwaps = {
  name: "lowrank-browser-swaps",
  setup(build) {
    build.onResolve({ filter: /^onnxruntime-node$/ }, () => ({ path: "onnxruntime-web", external: true }));
    build.onResolve({ filter: /\/platform\/files\.js$/ }, (args) => ({
      path: path.join(args.resolveDir, args.path.replace(/files\.js$/, "files.browser.ts")),
    }));
  },
};

// Split into shared chunks: the public index and ./internal share one copy of each module.
export default [
  packageConfig(["src/index.ts", "src/internal.ts"], { splitting: true }),
  // noExternal: tsup would claim onnxruntime-node as an external dependency before the swap sees it.
  browserConfig({ browser: "src/browser.ts" }, { esbuildPlugins: [browserSwaps], noExternal: ["onnxruntime-node"] }),
];
