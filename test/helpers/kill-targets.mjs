#!/usr/bin/env node
// Child processes for test/kill-atomicity.test.ts, killed with SIGKILL at random moments.
//   adapter-loop <dir>                       writes adapter version 0, 1, 0, 1, … to <dir> forever ("ready" after the first)
//   upload <hub-url> <token> <repo> <file>   commits <file> as weights.bin to <repo> on a Hub server
import { readFileSync } from "node:fs";
import { uploadFiles } from "@huggingface/hub";
import { adapterVersion } from "./kill-fixtures.mjs";
import { writeAdapter } from "@lowrank/core";

const [mode, ...args] = process.argv.slice(2);
if (mode === "adapter-loop") {
  for (let i = 0; ; i++) {
    await writeAdapter(args[0], adapterVersion(i % 2));
    if (i === 0) process.stdout.write("ready\n");
  }
} else if (mode === "upload") {
  const [hubUrl, accessToken, repo, file] = args;
  await uploadFiles({ repo, accessToken, hubUrl, useXet: false, files: [{ path: "weights.bin", content: new Blob([readFileSync(file)]) }] });
  process.stdout.write("committed\n");
} else {
  throw new Error(`unknown mode ${mode}`);
}
