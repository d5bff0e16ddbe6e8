import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, expect, test } from "vitest";
import { captureLowrankError, captureLowrankRejection } from "../testing/capture-error.js";
import { fileListSource, hubSource, opfsSource, urlSource } from "./file-source.js";
import { folderSource } from "./folder-source.js";

const text = (bytes: Uint8Array | undefined) => (bytes ? new TextDecoder().decode(bytes) : undefined);
const tmp = mkdtempSync(path.join(os.tmpdir(), "lowrank-file-source-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A fetch that answers from a table of URL → [status, body], recording each request. */
function fakeFetch(table: Record<string, [number, string]>) {
  const requests: { url: string; authorization?: string }[] = [];
  const fetch = async (url: string | URL | Request, init?: RequestInit) => {
    const headers = new Headers(init?.headers);
    requests.push({ url: String(url), authorization: headers.get("authorization") ?? undefined });
    const [status, body] = table[String(url)] ?? [404, "not found"];
    return new Response(body, { status });
  };
  return { fetch: fetch as typeof globalThis.fetch, requests };
}

test("urlSource reads files under a prefix, sends the token, treats 404 as absent and names the URL in other failures", async () => {
  const { fetch, requests } = fakeFetch({
    "https://example.test/a/adapter_config.json": [200, "{}"],
    "https://example.test/a/private.bin": [401, ""],
  });
  const source = urlSource("https://example.test/a", { token: "hf_x", fetch });
  expect(source.label).toBe("https://example.test/a/");
  expect(text(await source.read("adapter_config.json"))).toBe("{}");
  expect(await source.read("missing.json")).toBeUndefined();
  const error = await captureLowrankRejection(source.read("private.bin"));
  expect(error.code).toBe("IO_ERROR");
  expect(error.message).toBe("https://example.test/a/private.bin: HTTP 401 (a token is needed)");
  expect(requests.every((r) => r.authorization === "Bearer hf_x")).toBe(true);
  const offline = urlSource("https://example.test/a/", {
    fetch: (async () => {
      throw new TypeError("fetch failed");
    }) as typeof globalThis.fetch,
  });
  expect((await captureLowrankRejection(offline.read("x.json"))).message).toBe("https://example.test/a/x.json: cannot fetch (fetch failed)");
});

test("hubSource reads a repository at a revision through resolve URLs, on any Hub endpoint", async () => {
  const { fetch, requests } = fakeFetch({ "http://hub.test/you/lora/resolve/v1.0/adapter_config.json": [200, "{}"] });
  const source = hubSource("you/lora", { revision: "v1.0", endpoint: "http://hub.test/", token: "t", fetch });
  expect(source.label).toBe("you/lora@v1.0");
  expect(text(await source.read("adapter_config.json"))).toBe("{}");
  expect(requests).toEqual([{ url: "http://hub.test/you/lora/resolve/v1.0/adapter_config.json", authorization: "Bearer t" }]);
  expect(captureLowrankError(() => hubSource("not a repo")).message).toMatch(/expected owner\/name/);
});

test("fileListSource reads dropped files by name (a folder's files by their own names); opfsSource reads a directory handle", async () => {
  const blob = (name: string, body: string) => ({ name, arrayBuffer: async () => new TextEncoder().encode(body).buffer as ArrayBuffer });
  const dropped = fileListSource([blob("my-adapter/adapter_config.json", "{1}"), blob("adapter_model.safetensors", "st")]);
  expect(text(await dropped.read("adapter_config.json"))).toBe("{1}");
  expect(text(await dropped.read("adapter_model.safetensors"))).toBe("st");
  expect(await dropped.read("README.md")).toBeUndefined();

  const notFound = Object.assign(new Error("gone"), { name: "NotFoundError" });
  const directory = {
    name: "adapters",
    getFileHandle: async (name: string) => {
      if (name === "locked.json") throw Object.assign(new Error("denied"), { name: "NotAllowedError" });
      if (name !== "adapter_config.json") throw notFound;
      return { getFile: async () => blob(name, "{2}") };
    },
  };
  const opfs = opfsSource(directory);
  expect(text(await opfs.read("adapter_config.json"))).toBe("{2}");
  expect(await opfs.read("other.json")).toBeUndefined();
  expect((await captureLowrankRejection(opfs.read("locked.json"))).message).toBe("opfs:adapters/locked.json: cannot read (denied)");
});

test("folderSource reads a folder's files; absent files (or a file given as the folder) are undefined", async () => {
  writeFileSync(path.join(tmp, "config.json"), "{3}");
  const source = folderSource(tmp);
  expect(text(await source.read("config.json"))).toBe("{3}");
  expect(await source.read("missing.json")).toBeUndefined();
  expect(await folderSource(path.join(tmp, "config.json")).read("tokenizer.json")).toBeUndefined();
});
