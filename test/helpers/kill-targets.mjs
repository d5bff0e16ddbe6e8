#!/usr/bin/env node
// Child process for test/kill-atomicity.test.ts, run with LOWRANK_TEST_KILL_AT set so that it kills
// itself at that point of the write:
//   adapter <dir> <k>   writes adapter version k (see kill-fixtures.mjs) to <dir>
import { writeAdapter } from "@lowrank/core";
import { adapterVersion } from "./kill-fixtures.mjs";

const [mode, ...args] = process.argv.slice(2);
if (mode === "adapter") {
  await writeAdapter(args[0], adapterVersion(Number(args[1])));
} else {
  throw new Error(`unknown mode ${mode}`);
}
