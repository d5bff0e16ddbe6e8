// Push and pull against a self-hosted Hub (@lowrank/hub-server) with the tokens its operator chose
// (not only `hf_…` ones), and credential problems reported as such (never as a network failure),
// with the HTTP status and URL kept on the error. The client's own checks (the token sent to the
// Hub's origin only, what @huggingface/hub throws) are in packages/hub/src/client/hub-credentials.test.ts.
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { LowrankError } from "@lowrank/core";
import { requireFixture } from "@lowrank/core/testing";
import { HubError, pullRepo, pushAdapter, type HubConfig } from "@lowrank/hub";
import { startHubServer, type HubServer } from "@lowrank/hub-server";

const TOKEN = "operator-secret";
const adapter = requireFixture("gpt2-tiny-lora");

let tmp: string;
let server: HubServer;
let counter = 0;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "lowrank-hub-credentials-"));
  server = await startHubServer({ dir: path.join(tmp, "storage"), tokens: [TOKEN] });
});
afterAll(async () => {
  await server?.close();
  await rm(tmp, { recursive: true, force: true });
});

function config(token: string | undefined, hubUrl = server.url): HubConfig {
  return { hubUrl, token, cacheDir: path.join(tmp, `cache-${counter++}`), offline: false };
}

async function failure(promise: Promise<unknown>): Promise<HubError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, "the call should have failed").toBeInstanceOf(HubError);
  expect(error).toBeInstanceOf(LowrankError);
  const e = error as HubError;
  expect(e.message).not.toMatch(/[\r\n]/);
  return e;
}

describe("a self-hosted Hub's own tokens work for push and pull", () => {
  test('push (creating a private repo) and pull with the token "operator-secret"', async () => {
    const pushed = await pushAdapter({ dir: adapter, repo: "team/operator", private: true, config: config(TOKEN) });
    expect(pushed.created).toBe(true);
    expect(pushed.commitUrl).toBe(`${server.url}/team/operator/commit/${pushed.commitOid}`);
    const pulled = await pullRepo({ repo: "team/operator", config: config(TOKEN) });
    expect(pulled.commit).toBe(pushed.commitOid);
    for (const file of ["adapter_config.json", "adapter_model.safetensors"]) {
      expect(Buffer.compare(readFileSync(path.join(pulled.snapshotDir, file)), readFileSync(path.join(adapter, file)))).toBe(0);
    }
    // A second push to the existing repo goes through repoExists + uploadFiles only.
    const again = await pushAdapter({ dir: requireFixture("gpt2-tiny-dora"), repo: "team/operator", config: config(TOKEN) });
    expect(again.created).toBe(false);
  });

  test("a wrong token is a 401 that says the token has no access, with status and URL as fields", async () => {
    const push = await failure(pushAdapter({ dir: adapter, repo: "team/operator", config: config("operator-wrong") }));
    expect(push.code).toBe("USAGE");
    expect(push.status).toBe(401);
    expect(push.url).toMatch(new RegExp(`^${server.url}/api/`));
    expect(push.message).toMatch(/^creating team\/operator: 401 unauthorized: the token \(--token \/ HF_TOKEN\) has no access/);
    expect(push.message).not.toContain("operator-wrong");
    const pull = await failure(pullRepo({ repo: "team/operator", config: config("operator-wrong") }));
    expect(pull.code).toBe("USAGE");
    expect(pull.status).toBe(401);
    expect(pull.url).toBe(`${server.url}/api/models/team/operator/revision/main`);
    expect(pull.message).toMatch(/^team\/operator@main: 401 unauthorized: the token \(--token \/ HF_TOKEN\) has no access/);
    expect(pull.message).not.toContain("operator-wrong");
  });

  test("no token: the private repo is a 401 that says a token is needed", async () => {
    const pull = await failure(pullRepo({ repo: "team/operator", config: config(undefined) }));
    expect(pull.status).toBe(401);
    expect(pull.message).toMatch(/401 unauthorized: it needs a token/);
  });

  test("401, 403 and 404 are told apart by `status`", async () => {
    const missing = await failure(pullRepo({ repo: "team/never-pushed", config: config(TOKEN) }));
    expect(missing.status).toBe(404);
    expect(missing.url).toBe(`${server.url}/api/models/team/never-pushed/revision/main`);
    const file = await failure(pullRepo({ repo: "team/operator", revision: "no-such-branch", config: config(TOKEN) }));
    expect(file.status).toBe(404);
    expect(file.message).toMatch(/404 revision not found/);
  });
});

describe("credential problems are usage errors, never network errors", () => {
  test.each([
    ["a line break", "sekrit\nXQZW"],
    ["a character beyond Latin-1", "sekrit\u0100XQZW"],
    ["a space", "sekrit XQZW"],
  ])("a token with %s: push and pull refuse it before sending anything", async (_what, token) => {
    for (const run of [
      () => pushAdapter({ dir: adapter, repo: "team/operator", config: config(token) }),
      () => pullRepo({ repo: "team/operator", config: config(token) }),
    ]) {
      const e = await failure(run());
      expect(e.code).toBe("USAGE");
      expect(e.message).toMatch(/the token \(--token \/ HF_TOKEN\) cannot be sent in an HTTP header/);
      expect(e.message).not.toMatch(/connection|cannot reach/);
      for (const part of token.split(/[\s\u0100]/)) expect(e.message).not.toContain(part);
    }
  });

  test("a repo id @huggingface/hub refuses (no namespace) is a usage error, not a broken connection", async () => {
    const e = await failure(pushAdapter({ dir: adapter, repo: "lonely", config: config(TOKEN) }));
    expect(e.code).toBe("USAGE");
    expect(e.message).not.toMatch(/connection/);
    expect(e.message).toMatch(/^creating lonely: /);
  });

  test("a Hub that cannot be reached is still a network (IO_ERROR) failure", async () => {
    const e = await failure(pushAdapter({ dir: adapter, repo: "team/operator", config: config(TOKEN, "http://127.0.0.1:9") }));
    expect(e.code).toBe("IO_ERROR");
    expect(e.message).toMatch(/the connection to http:\/\/127\.0\.0\.1:9 failed or broke off/);
    expect(e.url).toMatch(/^http:\/\/127\.0\.0\.1:9\//);
    expect(e.status).toBeUndefined();
  });
});
