// `lowrank push` and `lowrank pull` against `lowrank hub serve --token <t>` with a token the operator
// chose (not an `hf_…` one): any token the server accepts works, and a wrong one is a 401 usage error.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { requireFixture } from "@lowrank/core/testing";
import { lowrank, startHubServeProcess } from "./cli-helpers.js";

const TOKEN = "operator-secret";
const tmp = mkdtempSync(path.join(os.tmpdir(), "lowrank-hub-operator-"));
let server: { url: string; stop: () => Promise<void> };
beforeAll(async () => {
  server = await startHubServeProcess(path.join(tmp, "storage"), TOKEN);
});
afterAll(async () => {
  await server?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

const env = (cache: string) => ({ HF_HUB_CACHE: path.join(tmp, cache), HF_ENDPOINT: server.url, HF_TOKEN: "" });

test('push and pull a private adapter with the token "operator-secret"', () => {
  const push = lowrank(["--token", TOKEN, "push", requireFixture("gpt2-tiny-lora"), "--repo", "team/operator", "--private"], env("c1"));
  expect(push.status, push.stderr).toBe(0);
  expect(push.stdout.trim()).toMatch(new RegExp(`^${server.url}/team/operator/commit/[0-9a-f]{40}$`));
  const pull = lowrank(["--token", TOKEN, "pull", "team/operator"], env("c2"));
  expect(pull.status, pull.stderr).toBe(0);
  const weights = "adapter_model.safetensors";
  expect(Buffer.compare(readFileSync(path.join(pull.stdout.trim(), weights)), readFileSync(requireFixture("gpt2-tiny-lora", weights)))).toBe(0);
  // Not a terminal: one line per file, no progress bar.
  expect(pull.stderr).toMatch(/^pulled {2}adapter_model\.safetensors \([\d,]+ bytes\)$/m);
  expect(pull.stderr).not.toContain("|");
});

test("HF_TOKEN works the same way", () => {
  const pull = lowrank(["pull", "team/operator"], { ...env("c3"), HF_TOKEN: TOKEN });
  expect(pull.status, pull.stderr).toBe(0);
});

test("a wrong token is a one-line 401 usage error (exit 2), never a network error, without the token", () => {
  const push = lowrank(["--token", "operator-wrong", "push", requireFixture("gpt2-tiny-lora"), "--repo", "team/operator"], env("c4"));
  expect(push.status).toBe(2);
  expect(push.stderr).toMatch(/^lowrank: error: creating team\/operator: 401 unauthorized: the token \(--token \/ HF_TOKEN\) has no access/);
  expect(push.stderr).not.toMatch(/connection|cannot reach/);
  expect(push.stderr).not.toContain("operator-wrong");
  const pull = lowrank(["--token", "operator-wrong", "pull", "team/operator"], env("c5"));
  expect(pull.status).toBe(2);
  expect(pull.stderr).toMatch(/^lowrank: error: team\/operator@main: 401 unauthorized: the token \(--token \/ HF_TOKEN\) has no access/);
  expect(pull.stderr).not.toContain("operator-wrong");
});

test("a token that cannot be sent in a header is a usage error before anything is sent", () => {
  const push = lowrank(["--token", "operator\tsecret", "push", requireFixture("gpt2-tiny-lora"), "--repo", "team/operator"], env("c6"));
  expect(push.status).toBe(2);
  expect(push.stderr).toMatch(/^lowrank: error: pushing to team\/operator: the token \(--token \/ HF_TOKEN\) cannot be sent in an HTTP header/);
});
