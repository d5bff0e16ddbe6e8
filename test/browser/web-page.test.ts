import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { cp, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { createRepo, uploadFiles } from "@huggingface/hub";
import type { Browser, Page } from "puppeteer-core";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { writeAdapter } from "@lowrank/core";
import { randomAdapter, requireFixture } from "@lowrank/core/testing";
import { lowrank, repoRoot, startHubServeProcess } from "../cli-helpers.js";
import { launchChromium, pageOutcome, pageProblems } from "./chromium.js";

const bin = path.join(repoRoot, "packages", "cli", "dist", "bin.js");
const PROMPT = [5, 17, 42, 8];
const NEW_TOKENS = 12;

/** `lowrank web` in a process of its own, with --log-requests: its URL and the paths fetched so far. */
async function startWeb(args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, [bin, "web", ...args, "--port", "0", "--log-requests"], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...env },
  });
  let stderr = "";
  child.stderr.on("data", (d) => {
    stderr += d;
  });
  const lines: string[] = [];
  const url = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      const parts = out.split("\n");
      out = parts.pop() ?? "";
      for (const line of parts) {
        lines.push(line);
        const m = / at (http:\/\/127\.0\.0\.1:\d+\/)$/.exec(line);
        if (m) resolve(m[1]!);
      }
    });
    child.once("exit", (code) => reject(new Error(`lowrank web exited with ${code}: ${stderr}`)));
  });
  const exited = new Promise<number | string | null>((resolve) => child.once("exit", (code, signal) => resolve(signal ?? code)));
  return { url, fetched: (p: string) => lines.filter((l) => l.startsWith(`GET ${p} `)).length, stop: () => child.kill("SIGTERM"), exited };
}

/** Node's tokens: `lowrank generate --backend onnx`, greedy. */
function nodeTokens(model: string, adapter?: string): number[] {
  const args = ["generate", "--backend", "onnx", "--model", model, "--prompt-ids", PROMPT.join(","), "--max-new-tokens", String(NEW_TOKENS), "--json"];
  const run = lowrank(adapter ? [...args, "--adapter", adapter] : args);
  expect(run.status, run.stderr).toBe(0);
  return JSON.parse(run.stdout).ids;
}

/** Picks an adapter in the page's list ("" for the base), clicks Generate, and reads the new ids. */
async function generateIn(page: Page, adapter: string) {
  await page.$eval("#result", (e) => (e.textContent = ""));
  await page.select("#adapter", adapter);
  await page.click("#generate");
  return pageOutcome(page);
}

let browser: Browser;
let work: string;

beforeAll(async () => {
  browser = await launchChromium();
  work = await mkdtemp(path.join(os.tmpdir(), "lowrank-web-"));
  // A corrupt adapter: a valid config with its safetensors cut short.
  const corrupt = path.join(work, "corrupt");
  await cp(requireFixture("gpt2-tiny-lora"), corrupt, { recursive: true });
  await writeFile(path.join(corrupt, "adapter_model.safetensors"), new Uint8Array([1, 2, 3]));
}, 120_000);

afterAll(async () => {
  await browser?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

describe.each([
  {
    name: "GPT-2 (graph built by lowrank from the checkpoint)",
    model: () => requireFixture("gpt2-tiny"),
    adapters: async () => ({ lora: requireFixture("gpt2-tiny-lora"), dora: requireFixture("gpt2-tiny-dora") }),
  },
  {
    name: "GPT-2 (the fixtures' model.onnx, exported without a cache)",
    model: () => path.join(requireFixture("gpt2-tiny"), "model.onnx"),
    adapters: async () => ({ lora: requireFixture("gpt2-tiny-lora"), dora: requireFixture("gpt2-tiny-dora") }),
  },
  {
    name: "LLaMA (Optimum-style model.kv.onnx)",
    model: () => path.join(requireFixture("llama-tiny"), "model.kv.onnx"),
    adapters: async () => {
      const second = path.join(work, "llama-mlp");
      await writeAdapter(second, await randomAdapter(requireFixture("llama-tiny"), { r: 2, lora_alpha: 8, target_modules: ["gate_proj", "o_proj"] }, 9, 0.2));
      return { lora: requireFixture("llama-tiny-lora"), mlp: second };
    },
  },
])("lowrank web in headless Chromium: $name", ({ model, adapters }) => {
  test("the page's greedy tokens equal lowrank generate --backend onnx for the base and two adapters, switched without reloading the model", async () => {
    const chosen: Record<string, string> = await adapters();
    const [first, second] = Object.keys(chosen) as [string, string];
    const expected = {
      "": nodeTokens(model()),
      [first]: nodeTokens(model(), chosen[first]),
      [second]: nodeTokens(model(), chosen[second]),
    };
    expect(expected[first]).not.toEqual(expected[""]);
    expect(expected[second]).not.toEqual(expected[first]);
    const server = await startWeb(["--model", model(), ...Object.entries(chosen).flatMap(([n, dir]) => ["--adapter", `${n}=${dir}`])]);
    const page = await browser.newPage();
    try {
      const problems = pageProblems(page);
      const elsewhere: string[] = [];
      page.on("request", (request) => {
        if (!request.url().startsWith(server.url) && !request.url().startsWith("data:")) elsewhere.push(request.url());
      });
      await page.goto(`${server.url}?adapter=${first}&prompt_ids=${PROMPT.join(",")}&max_new_tokens=${NEW_TOKENS}`);
      const outcome = await pageOutcome(page);
      expect(outcome.error).toBe("");
      expect(JSON.parse(outcome.result)).toEqual(expected[first]);
      for (const adapter of [second, "", first]) {
        const next = await generateIn(page, adapter);
        expect(next.error).toBe("");
        expect(JSON.parse(next.result), `adapter "${adapter}"`).toEqual(expected[adapter]);
      }
      // One page load, one model download, one session: switching fed other factors only.
      expect(server.fetched("/model/model.onnx")).toBe(1);
      expect(server.fetched("/app.js")).toBe(1);
      expect(problems).toEqual([]);
      expect(elsewhere, "every asset is served by lowrank web (no CDN)").toEqual([]);
      // COOP + COEP: onnxruntime-web may use threads.
      expect(await page.evaluate(() => crossOriginIsolated)).toBe(true);
    } finally {
      await page.close();
      server.stop();
      expect(await server.exited).toBe(0);
    }
  }, 180_000);
});

test("a corrupt adapter shows a readable error on the page, and the other adapters still work", async () => {
  const server = await startWeb([
    "--model",
    requireFixture("gpt2-tiny"),
    "--adapter",
    `good=${requireFixture("gpt2-tiny-lora")}`,
    "--adapter",
    `bad=${path.join(work, "corrupt")}`,
  ]);
  const page = await browser.newPage();
  try {
    await page.goto(`${server.url}?adapter=bad&prompt_ids=${PROMPT.join(",")}&max_new_tokens=4`);
    const outcome = await pageOutcome(page);
    expect(outcome.result).toBe("");
    expect(outcome.error).toMatch(/^adapter bad: .*adapters\/bad\/adapter_model\.safetensors: .*safetensors/);
    expect(await page.$eval("#error", (e) => (e as HTMLElement).offsetHeight)).toBeGreaterThan(0);
    // The page keeps the URL's max_new_tokens (4) in its box.
    const good = await generateIn(page, "good");
    expect(good.error).toBe("");
    expect(JSON.parse(good.result)).toEqual(nodeTokens(requireFixture("gpt2-tiny"), requireFixture("gpt2-tiny-lora")).slice(0, 4));
  } finally {
    await page.close();
    server.stop();
  }
}, 180_000);

test("files dropped on the page: a PEFT adapter's two files, and an .onnx model with its config files, then generated with, as Node generates", async () => {
  const server = await startWeb(["--model", requireFixture("gpt2-tiny")]);
  const page = await browser.newPage();
  try {
    const problems = pageProblems(page);
    await page.goto(server.url);
    await page.waitForFunction(() => document.querySelector("#status")?.textContent?.startsWith("Ready:"), { timeout: 60_000 });
    await page.$eval("#prompt", (e, ids) => ((e as HTMLTextAreaElement).value = ids), PROMPT.join(","));
    await page.$eval("#max-new-tokens", (e, n) => ((e as HTMLInputElement).value = n), String(NEW_TOKENS));

    const adapterDir = requireFixture("gpt2-tiny-lora");
    const input = (await page.$("input#adapter-files"))!;
    await input.uploadFile(path.join(adapterDir, "adapter_config.json"), path.join(adapterDir, "adapter_model.safetensors"));
    await page.type("#adapter-name", "dropped");
    await page.click("#add-adapter");
    await page.waitForFunction(() => document.querySelector("#status")?.textContent?.includes("1 adapter(s)"), { timeout: 60_000 });
    const dropped = await generateIn(page, "dropped");
    expect(dropped.error).toBe("");
    expect(JSON.parse(dropped.result)).toEqual(nodeTokens(requireFixture("gpt2-tiny"), adapterDir));

    // Another base model from a file: its session replaces the first (the dropped adapter does not fit it and is set aside).
    const llama = path.join(requireFixture("llama-tiny"), "model.kv.onnx");
    const side = ["config.json", "generation_config.json"].map((f) => path.join(requireFixture("llama-tiny"), f));
    await (await page.$("input#model-file"))!.uploadFile(llama, ...side);
    await page.waitForFunction(() => document.querySelector("#model")?.textContent?.startsWith("model.kv.onnx"), { timeout: 60_000 });
    await page.waitForFunction(() => document.querySelector("#status")?.textContent?.startsWith("Ready: model.kv.onnx"), { timeout: 60_000 });
    const base = await generateIn(page, "");
    expect(base.error).toBe("");
    expect(JSON.parse(base.result)).toEqual(nodeTokens(llama));
    expect(await page.$eval("#adapters", (e) => e.textContent)).toMatch(/dropped: cannot be used \(/);
    expect(problems).toEqual([]);
  } finally {
    await page.close();
    server.stop();
  }
}, 180_000);

test("a model and an adapter from private Hub repositories, read in the page through resolve URLs with the token the user typed", async () => {
  const token = "hf_lowrank_web_token_7a1";
  const hub = await startHubServeProcess(path.join(work, "hub"), token);
  const server = await startWeb(["--model", requireFixture("gpt2-tiny")], { HF_ENDPOINT: hub.url });
  const page = await browser.newPage();
  try {
    const push = lowrank(["--token", token, "push", requireFixture("gpt2-tiny-lora"), "--repo", "team/web-lora", "--private"], {
      HF_ENDPOINT: hub.url,
      HF_HUB_CACHE: path.join(work, "hub-cache"),
    });
    expect(push.status, push.stderr).toBe(0);
    const problems = pageProblems(page);
    await page.goto(`${server.url}?prompt_ids=${PROMPT.join(",")}&max_new_tokens=${NEW_TOKENS}`);
    await pageOutcome(page);
    // Without the token the private repository cannot be read: the page says so.
    await page.type("#hub-repo", "team/web-lora");
    await page.type("#adapter-name", "hubbed");
    await page.click("#add-adapter");
    await page.waitForFunction(() => document.querySelector("#error")?.textContent, { timeout: 60_000 });
    expect(await page.$eval("#error", (e) => e.textContent)).toMatch(
      /^adapter hubbed: http:\/\/127\.0\.0\.1:\d+\/team\/web-lora\/resolve\/main\/adapter_config\.json: HTTP 401 \(a token is needed\)$/,
    );
    await page.type("#hub-token", token);
    await page.click("#add-adapter");
    await page.waitForFunction(() => document.querySelector("#status")?.textContent?.includes("1 adapter(s)"), { timeout: 60_000 });
    const hubbed = await generateIn(page, "hubbed");
    expect(hubbed.error).toBe("");
    expect(JSON.parse(hubbed.result)).toEqual(nodeTokens(requireFixture("gpt2-tiny"), requireFixture("gpt2-tiny-lora")));

    // A model in Optimum's layout (onnx/model.onnx, config files at the top) from a private repository.
    const llama = requireFixture("llama-tiny");
    await createRepo({ repo: "team/llama-kv", accessToken: token, hubUrl: hub.url, private: true });
    const upload = (name: string, file: string) => ({ path: name, content: new Blob([readFileSync(path.join(llama, file))]) });
    await uploadFiles({
      repo: "team/llama-kv",
      accessToken: token,
      hubUrl: hub.url,
      useXet: false,
      files: [upload("onnx/model.onnx", "model.kv.onnx"), upload("config.json", "config.json"), upload("generation_config.json", "generation_config.json")],
    } as Parameters<typeof uploadFiles>[0]);
    await page.type("#model-repo", "team/llama-kv");
    await page.click("#load-model");
    await page.waitForFunction(() => document.querySelector("#status")?.textContent?.startsWith("Ready: team/llama-kv/onnx/model.onnx"), { timeout: 60_000 });
    const base = await generateIn(page, "");
    expect(base.error).toBe("");
    expect(JSON.parse(base.result)).toEqual(nodeTokens(path.join(llama, "model.kv.onnx")));
    expect(problems).toEqual([]);
  } finally {
    await page.close();
    server.stop();
    await hub.stop();
  }
}, 180_000);

test("WebGPU, chosen like any execution provider (?webgpu=1 where the browser has an adapter): the same tokens", async () => {
  const gpuBrowser = await launchChromium({ webgpu: true });
  const server = await startWeb(["--model", requireFixture("gpt2-tiny"), "--adapter", `lora=${requireFixture("gpt2-tiny-lora")}`]);
  try {
    const page = await gpuBrowser.newPage();
    await page.goto(`${server.url}?adapter=lora&prompt_ids=${PROMPT.join(",")}&max_new_tokens=${NEW_TOKENS}&webgpu=1`);
    const outcome = await pageOutcome(page, 120_000);
    expect(outcome.error).toBe("");
    expect(await page.$eval("#runtime", (e) => e.textContent)).toContain("WebGPU available");
    expect(await page.$eval("#status", (e) => e.textContent)).toBe("Done: lora on webgpu.");
    expect(JSON.parse(outcome.result)).toEqual(nodeTokens(requireFixture("gpt2-tiny"), requireFixture("gpt2-tiny-lora")));
  } finally {
    server.stop();
    await gpuBrowser.close();
  }
}, 180_000);
