import { packageConfig } from "../../tsup.base.mjs";
// Code splitting keeps each command's heavy runtimes (TensorFlow.js, ONNX Runtime) in chunks loaded
// on first use, so `lowrank inspect` does not start them.
export default packageConfig(["src/index.ts", "src/bin.ts"], { splitting: true });
