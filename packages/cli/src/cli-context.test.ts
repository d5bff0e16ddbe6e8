import "reflect-metadata";
import { afterEach, describe, expect, test, vi } from "vitest";
import { container } from "tsyringe";
import { memoryLogger, type BackendRegistry } from "@lowrank/core";
import { BACKEND_SETUP, HUB_CLIENT, LOGGER, type HubClient } from "./cli-context.js";
import { runCli } from "./program.js";

afterEach(() => vi.restoreAllMocks());

function capture(): string[] {
  const lines: string[] = [];
  vi.spyOn(process.stdout, "write").mockImplementation((chunk) => (lines.push(String(chunk)), true));
  return lines;
}

describe("the CLI's composition root (tsyringe)", () => {
  test("a container swaps in the logger, the Hub client and the backends; the global container is untouched", async () => {
    const logger = memoryLogger();
    const pulled: string[] = [];
    const hub = {
      resolveHubConfig: () => ({ hubUrl: "http://hub.test", cacheDir: "/cache", offline: false }),
      resolveLocation: async (arg: string) => arg,
      pullRepo: async (params: { repo: string; onFile?: (e: { path: string; size: number; cached: boolean }) => void }) => {
        pulled.push(params.repo);
        params.onFile?.({ path: "adapter_config.json", size: 10, cached: false });
        return { snapshotDir: `/cache/${params.repo}`, commit: "abc", files: [] };
      },
      pushAdapter: async () => ({ commitUrl: "http://hub.test/commit/1", commitOid: "1", created: false }),
    } as unknown as HubClient;
    const scope = container.createChildContainer();
    scope.register(LOGGER, { useValue: logger });
    scope.register(HUB_CLIENT, { useValue: async () => hub });
    scope.register(BACKEND_SETUP, {
      useValue: async (registry: BackendRegistry) =>
        registry.register("fake", () => ({
          name: "fake",
          capabilities: ["merge"],
          devices: ["cpu"],
          init: async () => ({ device: "cpu", note: "a test double" }),
          merge: async () => {
            throw new Error("unused");
          },
        })),
    });

    const out = capture();
    expect(await runCli(["pull", "org/adapter"], { container: scope })).toBe(0);
    expect(await runCli(["backends", "--json"], { container: scope })).toBe(0);
    vi.restoreAllMocks();
    expect(pulled).toEqual(["org/adapter"]);
    expect(out[0]).toBe("/cache/org/adapter\n");
    expect(logger.infos).toContain("pulled  adapter_config.json (10 bytes)");
    expect(JSON.parse(out[1]!)).toEqual([
      { name: "fake", available: true, device: "cpu", capabilities: ["merge"], default_for: ["merge"], note: "a test double" },
    ]);
    expect(container.isRegistered(LOGGER, true)).toBe(false);
  });
});
