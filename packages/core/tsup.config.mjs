import { browserConfig, packageConfig } from "../../tsup.base.mjs";
// Split into shared chunks: the public index, ./internal and ./testing share one copy of each module.
// The browser entries are built apart (no Node built-ins may reach them).
export default [
  packageConfig(["src/index.ts", "src/internal.ts", "src/testing.ts"], { splitting: true }),
  browserConfig({ browser: "src/browser.ts", "browser-internal": "src/browser-internal.ts" }),
];
