import { packageConfig } from "../../tsup.base.mjs";
// Split into shared chunks: the public index, ./internal and ./testing share one copy of each module.
export default packageConfig(["src/index.ts", "src/internal.ts", "src/testing.ts"], { splitting: true });
