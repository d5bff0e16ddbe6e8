import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { Checkpoint, readSafetensors, toFloat32 } from "@lowrank/core";
import { FIXTURE_PAIRS, maxAbsDiff, requireFixture } from "@lowrank/core/testing";
import { lowrank } from "./cli-helpers.js";

const tmp = mkdtempSync(path.join(os.tmpdir(), "lowrank-cli-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const manifest = JSON.parse(readFileSync(requireFixture("manifest.json"), "utf8"));

function expectOneLineError(run: ReturnType<typeof lowrank>, status: number, pattern: RegExp): void {
  expect(run.status, run.stderr).toBe(status);
  expect(run.stderr).toMatch(/^lowrank: error: [^\n]+\n$/);
  expect(run.stderr).toMatch(pattern);
  expect(run.stdout).toBe("");
}

describe("lowrank inspect", () => {
  test.each(FIXTURE_PAIRS.map((p) => [p.adapter, p] as const))("%s --json reports PEFT's modules, ranks and scalings", (_, pair) => {
    const run = lowrank(["inspect", requireFixture(pair.adapter), "--json"]);
    expect(run.status, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout);
    const expected = manifest.fixtures[pair.key].lora_modules as Record<string, { r: number; scaling: number }>;
    expect(report.modules.map((m: { name: string }) => m.name).sort()).toEqual(Object.keys(expected).sort());
    for (const m of report.modules) {
      expect(m.r, m.name).toBe(expected[m.name]!.r);
      expect(m.scaling, m.name).toBeCloseTo(expected[m.name]!.scaling, 10);
    }
    // Trainable parameters = every element of the adapter file (the manifest lists them for the added pairs).
    const keys = manifest.fixtures[pair.key].adapter_keys as Record<string, [string, number[]]> | undefined;
    if (keys) expect(report.trainable_parameters).toBe(Object.values(keys).reduce((s, [, shape]) => s + shape.reduce((a, b) => a * b, 1), 0));
    else expect(report.trainable_parameters).toBeGreaterThan(0);
  });

  test("text output with --base shows the trainable fraction", () => {
    const run = lowrank(["inspect", requireFixture("gpt2-tiny-lora"), "--base", requireFixture("gpt2-tiny")]);
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toContain("transformer.h.0.attn.c_attn  lora  r=4  alpha=8  scaling=2  64→192");
    expect(run.stdout).toMatch(/trainable parameters: 5,632 of 136,960 in the base \(4\.1121%\)/);
  });

  test("DoRA, embedding and modules_to_save are shown", () => {
    expect(lowrank(["inspect", requireFixture("gpt2-tiny-dora")]).stdout).toContain("lora+dora");
    expect(lowrank(["inspect", requireFixture("llama-tiny-embed-lora")]).stdout).toContain("model.embed_tokens  embedding  r=4  alpha=16  scaling=4  512→64");
    expect(lowrank(["inspect", requireFixture("roberta-tiny-lora")]).stdout).toContain("full tensors (modules_to_save, biases): classifier.dense.bias");
  });
});

describe("lowrank merge", () => {
  test.each(FIXTURE_PAIRS.map((p) => [p.adapter, p] as const))("%s reproduces every merged tensor within 1e-5", async (_, pair) => {
    const out = path.join(tmp, `merge-${pair.adapter}`);
    const run = lowrank(["merge", "--base", requireFixture(pair.base), "--adapter", requireFixture(pair.adapter), "--out", out, "--safe"]);
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^merged \d+ module\(s\)/);
    const cases = (await readSafetensors(requireFixture("cases", `${pair.cases}.safetensors`))).tensors;
    const merged = await Checkpoint.open(out);
    try {
      for (const [key, tensor] of cases) {
        if (!key.startsWith("merged.")) continue;
        const want = toFloat32(tensor);
        expect(maxAbsDiff(await merged.readFloat32(key.slice(7)), want), key).toBeLessThanOrEqual(1e-5 + 1e-6 * Math.max(...want.map(Math.abs)));
      }
    } finally {
      await merged.close();
    }
  });

  test("bad input: one line on stderr, exit 2, nothing written", () => {
    const out = path.join(tmp, "never");
    const brokenBase = path.join(tmp, "broken-base");
    mkdirSync(brokenBase);
    copyFileSync(requireFixture("gpt2-tiny", "config.json"), path.join(brokenBase, "config.json"));
    writeFileSync(path.join(brokenBase, "model.safetensors"), readFileSync(requireFixture("gpt2-tiny", "model.safetensors")).subarray(0, 5000));
    const badConfig = path.join(tmp, "bad-config");
    mkdirSync(badConfig);
    copyFileSync(requireFixture("gpt2-tiny-lora", "adapter_model.safetensors"), path.join(badConfig, "adapter_model.safetensors"));
    writeFileSync(
      path.join(badConfig, "adapter_config.json"),
      readFileSync(requireFixture("gpt2-tiny-lora", "adapter_config.json"), "utf8").replace('"r": 4', '"r": "four"'),
    );
    const cases: [string[], RegExp][] = [
      [["--base", requireFixture("gpt2-tiny"), "--adapter", path.join(tmp, "missing"), "--out", out], /missing: not an adapter folder/],
      [
        ["--base", brokenBase, "--adapter", requireFixture("gpt2-tiny-lora"), "--out", out],
        /model.safetensors: not a valid safetensors file: tensor "[^"]+" has data_offsets \[\d+, \d+\] beyond the \d+-byte data section/,
      ],
      [["--base", requireFixture("gpt2-tiny"), "--adapter", badConfig, "--out", out], /adapter_config.json: `r` must be a positive integer, got "four"/],
      [
        ["--base", requireFixture("llama-tiny"), "--adapter", requireFixture("gpt2-tiny-lora"), "--out", out],
        /`target_modules` \["c_attn", "c_proj"\] matched no module of the base model/,
      ],
      [["--base", requireFixture("gpt2-tiny"), "--adapter", requireFixture("gpt2-tiny-lora")], /required option '--out <dir>' not specified/],
      [
        ["--base", requireFixture("gpt2-tiny"), "--adapter", requireFixture("gpt2-tiny-lora"), "--out", requireFixture("gpt2-tiny")],
        /--out must differ from --model/,
      ],
    ];
    for (const [args, pattern] of cases) {
      expectOneLineError(lowrank(["merge", ...args]), 2, pattern);
      expect(existsSync(out)).toBe(false);
    }
    expect(readdirSync(tmp).filter((f) => f.startsWith("."))).toEqual([]);
  });

  test("--debug adds the stack trace", () => {
    const run = lowrank(["--debug", "merge", "--base", requireFixture("gpt2-tiny"), "--adapter", path.join(tmp, "missing"), "--out", path.join(tmp, "x")]);
    expect(run.status).toBe(2);
    expect(run.stderr.split("\n")[0]).toMatch(/^lowrank: error: /);
    expect(run.stderr).toMatch(/\n\s+at /);
  });
});

describe("lowrank import loralib", () => {
  test("imports the microsoft/LoRA checkpoint; merging the import gives loralib's weights", async () => {
    const adapterDir = path.join(tmp, "imported");
    const run = lowrank([
      "import",
      "loralib",
      requireFixture("loralib-gpt2", "lora_state_dict.pt"),
      "--base",
      requireFixture("gpt2-tiny"),
      "--rank",
      "4",
      "--alpha",
      "32",
      "--target-modules",
      "c_attn",
      "--enable-lora",
      "1,1,1",
      "--fan-in-fan-out",
      "--out",
      adapterDir,
    ]);
    expect(run.status, run.stderr).toBe(0);
    const config = JSON.parse(readFileSync(path.join(adapterDir, "adapter_config.json"), "utf8"));
    expect(config).toMatchObject({ r: 12, lora_alpha: 96, target_modules: ["c_attn"], fan_in_fan_out: true, peft_type: "LORA" });
    const out = path.join(tmp, "imported-merged");
    expect(lowrank(["merge", "--base", requireFixture("gpt2-tiny"), "--adapter", adapterDir, "--out", out]).status).toBe(0);
    const cases = (await readSafetensors(requireFixture("cases", "loralib-gpt2.safetensors"))).tensors;
    const merged = await Checkpoint.open(out);
    try {
      for (const key of ["transformer.h.0.attn.c_attn.weight", "transformer.h.1.attn.c_attn.weight"]) {
        expect(maxAbsDiff(await merged.readFloat32(key), toFloat32(cases.get(`merged.${key}`)!))).toBeLessThanOrEqual(1e-5);
      }
    } finally {
      await merged.close();
    }
  });

  test("a hostile pickle is refused without running it", () => {
    const evil = path.join(tmp, "evil.pt");
    const good = readFileSync(requireFixture("loralib-gpt2", "lora_state_dict.pt"));
    // Point the pickle's first GLOBAL at os.system (same length as a harmless rename keeps the zip valid).
    const text = good.toString("latin1");
    const patched = text.replace("torch._utils\n_rebuild_tensor_v2", "os\nsystem\n".padEnd("torch._utils\n_rebuild_tensor_v2".length, "_"));
    writeFileSync(evil, Buffer.from(patched, "latin1"));
    const run = lowrank([
      "import",
      "loralib",
      evil,
      "--base",
      requireFixture("gpt2-tiny"),
      "--rank",
      "4",
      "--alpha",
      "32",
      "--target-modules",
      "c_attn",
      "--out",
      path.join(tmp, "evil-out"),
    ]);
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/^lowrank: error: .*evil\.pt: .*not allowed/);
    expect(existsSync(path.join(tmp, "evil-out"))).toBe(false);
  });

  test("bad numbers are usage errors", () => {
    expectOneLineError(
      lowrank([
        "import",
        "loralib",
        requireFixture("loralib-gpt2", "lora_state_dict.pt"),
        "--base",
        requireFixture("gpt2-tiny"),
        "--rank",
        "x",
        "--alpha",
        "32",
        "--target-modules",
        "c_attn",
        "--out",
        path.join(tmp, "o"),
      ]),
      2,
      /--rank must be a number, got "x"/,
    );
  });
});

describe("usage", () => {
  test("unknown command and option exit 2 with one line", () => {
    expectOneLineError(lowrank(["frobnicate"]), 2, /unknown command 'frobnicate'/);
    expectOneLineError(lowrank(["inspect", requireFixture("gpt2-tiny-lora"), "--nope"]), 2, /unknown option '--nope'/);
  });
  test("--help exits 0", () => {
    const run = lowrank(["--help"]);
    expect(run.status).toBe(0);
    expect(run.stdout).toContain("merge");
  });
});

describe("help and version", () => {
  test("no arguments prints the help; --version prints the version", () => {
    const help = lowrank([]);
    expect(help.status).toBe(0);
    expect(help.stdout).toContain("Usage: lowrank");
    expect(help.stdout).toContain("merge");
    const version = lowrank(["--version"]);
    expect(version.status).toBe(0);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  test("an unwritable --log path is a usage error before training starts", () => {
    const run = lowrank([
      "train",
      "--model",
      requireFixture("gpt2-tiny"),
      "--data",
      requireFixture("gpt2-tiny", "config.json"),
      "--out",
      path.join(tmp, "never-train"),
      "--log",
      path.join(tmp, "no-such-dir", "log.jsonl"),
    ]);
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/^lowrank: error: --log .*log\.jsonl: cannot write \(ENOENT\)\n$/);
  });
});

test.each([
  ["inspect"],
  ["merge"],
  ["predict"],
  ["train"],
  ["generate"],
  ["pull"],
  ["push"],
  ["backends"],
  ["onnx", "merge"],
  ["onnx", "export"],
  ["import", "loralib"],
  ["hub", "serve"],
])("`lowrank %s --help` shows examples", (...command) => {
  const run = lowrank([...command.filter(Boolean), "--help"]);
  expect(run.status).toBe(0);
  expect(run.stdout).toContain("\nExamples:\n");
  expect(run.stdout).toMatch(new RegExp(`\\n  \\$ .*lowrank .*${command.at(-1)}`));
});
