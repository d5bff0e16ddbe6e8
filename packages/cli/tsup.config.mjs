import { packageConfig } from "../../tsup.base.mjs";
// Code splitting keeps each command's heavy runtimes (TensorFlow.js, ONNX Runtime) in chunks loaded
// on first use, so `lowrank inspect` does not start them. @lowrank/bench is a dev dependency (tsup
// would bundle it): `lowrank bench` imports it at run time, where it is installed (the repository).
export default packageConfig(["src/index.ts", "src/bin.ts"], { splitting: true, external: ["@lowrank/bench"] });
