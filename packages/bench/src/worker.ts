// The process that runs one measurement: `node dist/worker.js '<job json>'` prints the result as
// one JSON line (the suite spawns it once per measurement, so memory and warm caches do not mix).
import { runWorkerJob, type WorkerJob } from "./bench-worker.js";

const [json] = process.argv.slice(2);
if (!json) {
  process.stderr.write("bench worker: usage: worker.js '<job json>'\n");
  process.exit(2);
}
runWorkerJob(JSON.parse(json) as WorkerJob).then(
  (result) => void process.stdout.write(`${JSON.stringify(result)}\n`),
  (error: unknown) => {
    process.stderr.write(`bench worker: ${error instanceof Error ? error.message.split("\n")[0] : String(error)}\n`);
    process.exitCode = 1;
  },
);
