import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { writeAdapter } from "@lowrank/core";
import { randomAdapter } from "@lowrank/core/testing";
import { ServeEngine } from "./serve-engine.js";
import { startServeServer, type ServeServer } from "./serve-server.js";

// The embedded GPT-2 (it has a tokenizer) with a chat template, and two random adapters on it.
const repoRoot = path.resolve(import.meta.dirname, "..", "..", "..");
const tmp = mkdtempSync(path.join(os.tmpdir(), "lowrank-serve-"));
const model = path.join(tmp, "gpt2-mini");
const TOKEN = "sk-test-token";
const TEMPLATE = "{% for m in messages %}{{ m.role }}: {{ m.content }} | {% endfor %}{% if add_generation_prompt %}assistant:{% endif %}";

let server: ServeServer;
let client: OpenAI;
const adapters: Record<string, string> = {};

beforeAll(async () => {
  cpSync(path.join(repoRoot, "models", "gpt2-mini"), model, { recursive: true });
  writeFileSync(path.join(model, "tokenizer_config.json"), JSON.stringify({ chat_template: TEMPLATE, eos_token: "<|endoftext|>" }));
  for (const [name, seed, targets] of [
    ["attn", 3, ["c_attn"]],
    ["mlp", 4, ["c_fc", "mlp.c_proj"]],
    ["late", 5, ["c_attn", "c_fc"]],
  ] as const) {
    adapters[name] = path.join(tmp, name);
    await writeAdapter(adapters[name], await randomAdapter(model, { r: 4, lora_alpha: 32, target_modules: [...targets], fan_in_fan_out: true }, seed, 0.2));
  }
  const engine = await ServeEngine.create({
    model,
    servedModelName: "base",
    adapters: { attn: adapters.attn!, mlp: adapters.mlp! },
    maxBatch: 4,
    maxLoadedAdapters: 2,
  });
  server = await startServeServer({ engine, port: 0, token: TOKEN, maxTokens: 64 });
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: TOKEN, maxRetries: 0 });
}, 120_000);

afterAll(async () => {
  await server?.close();
  rmSync(tmp, { recursive: true, force: true });
});

const PROMPT = "name : The Eagle | eatType : coffee shop | food : French ||";

describe("lowrank serve with the official openai client", () => {
  test("/v1/models lists the base and every adapter (parent: the base)", async () => {
    const models = await client.models.list();
    expect(models.data.map((m) => [m.id, (m as unknown as { parent: string | null }).parent])).toEqual([
      ["base", null],
      ["attn", "base"],
      ["mlp", "base"],
    ]);
  });

  test("completions: greedy text per adapter, usage counts, and the same answer alone or in a busy mixed batch", async () => {
    const ask = (model: string) => client.completions.create({ model, prompt: PROMPT, max_tokens: 12, temperature: 0 });
    const alone = { base: await ask("base"), attn: await ask("attn"), mlp: await ask("mlp") };
    expect(alone.base.usage).toMatchObject({ completion_tokens: 12, total_tokens: alone.base.usage!.prompt_tokens + 12 });
    expect(alone.base.choices[0]!.text.length).toBeGreaterThan(0);
    expect(alone.attn.choices[0]!.text).not.toBe(alone.base.choices[0]!.text);
    expect(alone.mlp.choices[0]!.text).not.toBe(alone.attn.choices[0]!.text);
    const busy = await Promise.all(Array.from({ length: 9 }, (_, i) => ask(["base", "attn", "mlp"][i % 3]!)));
    busy.forEach((r, i) => expect(r.choices[0]!.text, `request ${i}`).toBe(alone[(["base", "attn", "mlp"] as const)[i % 3]!].choices[0]!.text));
  });

  test("a list of prompts, token-id prompts, n, stop strings and logprobs", async () => {
    const ids = await client.completions.create({ model: "base", prompt: [[5, 6, 7, 8]], max_tokens: 4, temperature: 0 });
    expect((ids.choices[0] as unknown as { token_ids: number[] }).token_ids).toHaveLength(4);
    const two = await client.completions.create({ model: "attn", prompt: [PROMPT, "name : Zizzi ||"], max_tokens: 5, temperature: 0, n: 2 });
    expect(two.choices.map((c) => c.index)).toEqual([0, 1, 2, 3]);
    expect(two.choices[0]!.text).toBe(two.choices[1]!.text);
    const full = await client.completions.create({ model: "base", prompt: PROMPT, max_tokens: 12, temperature: 0 });
    const cut = full.choices[0]!.text.slice(3, 6);
    const stopped = await client.completions.create({ model: "base", prompt: PROMPT, max_tokens: 12, temperature: 0, stop: [cut], logprobs: 2 });
    expect(stopped.choices[0]!.text).toBe(full.choices[0]!.text.slice(0, full.choices[0]!.text.indexOf(cut)));
    expect(stopped.choices[0]!.finish_reason).toBe("stop");
    const lp = stopped.choices[0]!.logprobs!;
    expect(lp.token_logprobs!.length).toBeGreaterThan(0);
    for (const [i, top] of lp.top_logprobs!.entries()) expect(Math.max(...Object.values(top))).toBeCloseTo(lp.token_logprobs![i]!, 5);
  });

  test("sampling with a seed repeats; another seed differs", async () => {
    const sample = (seed: number) => client.completions.create({ model: "mlp", prompt: PROMPT, max_tokens: 16, temperature: 1, seed });
    const [a, b, c] = [await sample(1), await sample(1), await sample(2)];
    expect(a.choices[0]!.text).toBe(b.choices[0]!.text);
    expect(a.choices[0]!.text).not.toBe(c.choices[0]!.text);
  });

  test("streaming completions and chat: server-sent chunks that add up to the non-streamed answer", async () => {
    const whole = await client.completions.create({ model: "attn", prompt: PROMPT, max_tokens: 10, temperature: 0 });
    let text = "";
    let finish: string | null = null;
    let usage: unknown;
    const stream = await client.completions.create({
      model: "attn",
      prompt: PROMPT,
      max_tokens: 10,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      for (const c of chunk.choices) {
        text += c.text;
        finish = c.finish_reason ?? finish;
      }
    }
    expect(text).toBe(whole.choices[0]!.text);
    expect(finish).toBe("length");
    expect(usage).toMatchObject({ completion_tokens: 10 });

    const messages = [{ role: "user" as const, content: "name : Zizzi | food : Italian" }];
    const answer = await client.chat.completions.create({ model: "mlp", messages, max_tokens: 8, temperature: 0 });
    expect(answer.choices[0]!.message.role).toBe("assistant");
    let chat = "";
    for await (const chunk of await client.chat.completions.create({ model: "mlp", messages, max_tokens: 8, temperature: 0, stream: true }))
      chat += chunk.choices[0]?.delta.content ?? "";
    expect(chat).toBe(answer.choices[0]!.message.content);
    // The chat template rendered the conversation: the same as completing its text.
    const rendered = await client.completions.create({ model: "mlp", prompt: `user: ${messages[0]!.content} | assistant:`, max_tokens: 8, temperature: 0 });
    expect(answer.choices[0]!.message.content).toBe(rendered.choices[0]!.text);
  });

  test("adapters at run time: load (a third evicts the least recently used idle one, reloaded on demand), unload", async () => {
    const before = await client.completions.create({ model: "attn", prompt: PROMPT, max_tokens: 6, temperature: 0 });
    const loaded = await client.post("/load_lora_adapter", { body: { lora_name: "late", lora_path: adapters.late }, __binaryResponse: true } as never);
    expect(await (loaded as unknown as Response).text()).toContain("added successfully");
    expect((await client.models.list()).data.map((m) => m.id)).toEqual(["base", "attn", "mlp", "late"]);
    const late = await client.completions.create({ model: "late", prompt: PROMPT, max_tokens: 6, temperature: 0 });
    expect(late.choices[0]!.text).not.toBe(before.choices[0]!.text);
    // attn was unloaded to make room (two at once); asking for it loads it again, with the same answer.
    expect((await client.completions.create({ model: "attn", prompt: PROMPT, max_tokens: 6, temperature: 0 })).choices[0]!.text).toBe(before.choices[0]!.text);
    await client.post("/unload_lora_adapter", { body: { lora_name: "late" }, __binaryResponse: true } as never);
    await expect(client.completions.create({ model: "late", prompt: PROMPT, max_tokens: 2 })).rejects.toMatchObject({ status: 404 });
  });

  test("errors: OpenAI's JSON error body for a bad token, an unknown model, bad fields, too many tokens, a bad adapter path", async () => {
    const wrong = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "nope", maxRetries: 0 });
    await expect(wrong.models.list()).rejects.toMatchObject({ status: 401, error: { type: "authentication_error", code: "invalid_api_key" } });
    await expect(client.completions.create({ model: "zz", prompt: "x" })).rejects.toMatchObject({ status: 404, error: { code: "model_not_found" } });
    await expect(client.completions.create({ model: "base", prompt: "x", temperature: 7 })).rejects.toMatchObject({
      status: 400,
      error: { type: "invalid_request_error", message: expect.stringMatching(/^`temperature`/) },
    });
    await expect(client.completions.create({ model: "base", prompt: "x", max_tokens: 65 })).rejects.toMatchObject({ status: 400 });
    await expect(client.completions.create({ model: "base", prompt: [[1, 2, 999_999]] })).rejects.toMatchObject({ status: 400 });
    await expect(client.post("/load_lora_adapter", { body: { lora_name: "x", lora_path: path.join(tmp, "missing") } })).rejects.toMatchObject({
      status: 400,
    });
    const health = await fetch(`${server.url}/health`);
    expect(await health.json()).toMatchObject({ status: "ok" });
    const big = await fetch(`${server.url}/v1/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "base", prompt: "x".repeat(2 << 20) }),
    });
    expect(big.status).toBe(413);
  });
});
