import { packageConfig } from "../../tsup.base.mjs";
// Split into shared chunks: the public index and ./internal share one copy of each module.
export default packageConfig(["src/index.ts", "src/internal.ts"], { splitting: true });
