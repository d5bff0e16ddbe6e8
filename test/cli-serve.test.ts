import { spawn } from "node:child_process";
import path from "node:path";
import { expect, test } from "vitest";
import { requireFixture } from "@lowrank/core/testing";
import { lowrank, repoRoot } from "./cli-helpers.js";

const bin = path.join(repoRoot, "packages", "cli", "dist", "bin.js");

/** `lowrank serve` in a process of its own; resolves with its URL once it listens. */
async function startServe(args: string[]) {
  const child = spawn(process.execPath, [bin, ...args, "--port", "0"], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d) => {
    stderr += d;
  });
  const exited = new Promise<number | string | null>((resolve) => child.once("exit", (code, signal) => resolve(signal ?? code)));
  const url = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      const m = /at (http:\/\/127\.0\.0\.1:\d+)\/v1/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.once("exit", (code) => reject(new Error(`lowrank serve exited with ${code}: ${stderr}`)));
  });
  return { url, exited, stop: () => child.kill("SIGTERM") };
}

const post = (url: string, body: unknown, token = "t0k") =>
  fetch(url, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify(body) });

test("lowrank serve: adapters by NAME=folder, a bearer token, and SIGTERM lets the in-flight request finish before exiting 0", async () => {
  const server = await startServe([
    "--token",
    "t0k",
    "serve",
    "--model",
    requireFixture("llama-tiny"),
    "--adapter",
    `tuned=${requireFixture("llama-tiny-lora")}`,
  ]);
  try {
    const models = await (await fetch(`${server.url}/v1/models`, { headers: { authorization: "Bearer t0k" } })).json();
    expect(models.data.map((m: { id: string }) => m.id)).toEqual([requireFixture("llama-tiny"), "tuned"]);
    expect((await fetch(`${server.url}/v1/models`)).status).toBe(401);
    // A streamed request is running (its first chunk has arrived) when the server is told to stop: it still gets its whole answer.
    const response = await post(`${server.url}/v1/completions`, { model: "tuned", prompt: [3, 4, 5], max_tokens: 100, temperature: 0, stream: true });
    const reader = response.body!.getReader();
    let text = new TextDecoder().decode((await reader.read()).value);
    server.stop();
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) text += new TextDecoder().decode(chunk.value);
    const events = text.split("\n\n").filter((e) => e.startsWith("data: "));
    expect(events.at(-1)).toBe("data: [DONE]");
    const tokens = events.slice(0, -1).flatMap((e) => JSON.parse(e.slice(6)).choices.flatMap((c: { token_ids: number[] }) => c.token_ids));
    expect(tokens).toHaveLength(100);
    expect(await server.exited).toBe(0);
  } finally {
    server.stop();
  }
});

test("lowrank serve: a bad --adapter pair or a missing adapter folder is a one-line usage error", () => {
  const noName = lowrank(["serve", "--model", requireFixture("llama-tiny"), "--adapter", requireFixture("llama-tiny-lora")]);
  expect(noName.status).toBe(2);
  expect(noName.stderr.trim()).toMatch(/--adapter .*: expected NAME=<adapter folder or Hub id>$/);
  const missing = lowrank(["serve", "--model", requireFixture("llama-tiny"), "--adapter", "x=/nonexistent/adapter-folder"]);
  expect(missing.status).not.toBe(0);
  expect(missing.stderr.trim().split("\n")).toHaveLength(1);
  expect(missing.stderr).toMatch(/nonexistent\/adapter-folder/);
});
