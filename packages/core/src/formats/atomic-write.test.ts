import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { removeAbandonedTemps, writeDirectoryAtomic, writeFileAtomic } from "./atomic-write.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "lowrank-atomic-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

test("temporaries of a killed writer are removed by the next write; a live writer's are kept", async () => {
  const live = spawn(process.execPath, ["-e", "setTimeout(() => {}, 20000)"]);
  try {
    const target = path.join(dir, "adapter");
    await mkdir(path.join(dir, ".adapter.partial-999999-0123abcd"));
    await writeFile(path.join(dir, ".adapter.partial-999999-0123abcd", "adapter_model.safetensors"), "half");
    await writeFile(path.join(dir, ".notes.txt.tmp-999998-deadbeef"), "half");
    await writeFile(path.join(dir, `.adapter.tmp-${live.pid}-00000000`), "someone else's, still writing");
    await writeFile(path.join(dir, ".adapter.tmp-999997-nothex!!"), "not ours: another naming");
    await writeDirectoryAtomic(target, async (temp) => writeFile(path.join(temp, "adapter_config.json"), "{}"));
    await writeFileAtomic(path.join(dir, "notes.txt"), "done");
    expect((await readdir(dir)).sort()).toEqual([`.adapter.tmp-${live.pid}-00000000`, ".adapter.tmp-999997-nothex!!", "adapter", "notes.txt"].sort());
    expect(await readFile(path.join(target, "adapter_config.json"), "utf8")).toBe("{}");
    await removeAbandonedTemps(path.join(dir, "unrelated"));
    expect(await readdir(dir)).toContain(`.adapter.tmp-${live.pid}-00000000`);
  } finally {
    live.kill("SIGKILL");
  }
});

test("replacing a folder keeps the files the new content does not replace (training checkpoints)", async () => {
  const target = path.join(dir, "run");
  await writeDirectoryAtomic(target, async (temp) => {
    await writeFile(path.join(temp, "adapter_model.safetensors"), "old weights");
    await mkdir(path.join(temp, "checkpoint-2"));
  });
  await writeDirectoryAtomic(target, async (temp) => writeFile(path.join(temp, "adapter_model.safetensors"), "new weights"));
  expect((await readdir(target)).sort()).toEqual(["adapter_model.safetensors", "checkpoint-2"]);
  expect(await readFile(path.join(target, "adapter_model.safetensors"), "utf8")).toBe("new weights");
});
