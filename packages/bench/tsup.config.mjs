import { packageConfig } from "../../tsup.base.mjs";
// worker.ts is the process the suite spawns per measurement (dist/worker.js, found beside the suite
// through import.meta.url: shimmed in the CJS build). Code splitting keeps each measurement's
// runtimes (TensorFlow.js, ONNX Runtime) in chunks loaded only by the worker that uses them.
export default packageConfig(["src/index.ts", "src/worker.ts"], { splitting: true, shims: true });
