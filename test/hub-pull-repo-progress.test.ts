// pullRepo's onProgress against a self-hosted Hub (@lowrank/hub-server): bytes per file as they
// arrive, for downloaded and cached files. The CLI's progress bar is test/hub-pull-progress.test.ts.
import { randomBytes } from "node:crypto";
import { statSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { uploadFiles } from "@huggingface/hub";
import { afterAll, beforeAll, expect, test } from "vitest";
import { requireFixture } from "@lowrank/core/testing";
import { pullRepo, pushAdapter, type HubConfig } from "@lowrank/hub";
import { startHubServer, type HubServer } from "@lowrank/hub-server";

const TOKEN = "hf_progress_token";
const big = new Uint8Array(randomBytes(3 * 1024 * 1024));
const adapter = requireFixture("llama-tiny-lora");
let tmp: string;
let server: HubServer;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "lowrank-pull-progress-"));
  server = await startHubServer({ dir: path.join(tmp, "storage"), tokens: [TOKEN] });
  await pushAdapter({ dir: adapter, repo: "team/progress", config: { hubUrl: server.url, token: TOKEN, cacheDir: path.join(tmp, "unused"), offline: false } });
  await uploadFiles({
    repo: "team/progress",
    accessToken: TOKEN,
    hubUrl: server.url,
    useXet: false,
    files: [{ path: "data/big.bin", content: new Blob([big]) }],
  } as Parameters<typeof uploadFiles>[0]);
});
afterAll(async () => {
  await server?.close();
  await rm(tmp, { recursive: true, force: true });
});

test("pullRepo reports bytes per file as they arrive, ending at the file's size (also for cached files)", async () => {
  const config: HubConfig = { hubUrl: server.url, token: TOKEN, cacheDir: path.join(tmp, "cache"), offline: false };
  const events: Array<{ path: string; bytes: number; total: number }> = [];
  const files: string[] = [];
  const result = await pullRepo({ repo: "team/progress", config, onProgress: (e) => events.push({ ...e }), onFile: (f) => files.push(f.path) });
  for (const name of result.files) {
    const mine = events.filter((e) => e.path === name);
    expect(mine.length, name).toBeGreaterThan(0);
    const total = statSync(path.join(result.snapshotDir, name)).size;
    expect(mine.every((e) => e.total === total)).toBe(true);
    // Never decreasing, never past the total, and the last one says "done".
    expect(mine.every((e, i) => e.bytes >= (mine[i - 1]?.bytes ?? 0) && e.bytes <= total)).toBe(true);
    expect(mine.at(-1)!.bytes).toBe(total);
  }
  // A large file arrives in several pieces: more than one event before it is complete.
  expect(events.filter((e) => e.path === "data/big.bin").length).toBeGreaterThan(1);
  expect(events.filter((e) => e.path === "data/big.bin").at(-1)).toEqual({ path: "data/big.bin", bytes: big.byteLength, total: big.byteLength });
  // Events of one file come before the next file's (the loop downloads one file at a time) and before its onFile.
  expect([...new Set(events.map((e) => e.path))]).toEqual(files);

  // Pulled again: every file is cached, and still reported once, complete.
  const again: Array<{ path: string; bytes: number; total: number }> = [];
  await pullRepo({ repo: "team/progress", config, onProgress: (e) => again.push({ ...e }) });
  expect(again.map((e) => e.path)).toEqual(result.files);
  expect(again.every((e) => e.bytes === e.total)).toBe(true);
});
