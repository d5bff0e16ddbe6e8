import { mkdtemp, readdir, readFile, rm, writeFile, mkdir, copyFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { bindAdapter } from "../adapter/bind-adapter.js";
import { readAdapter } from "../adapter/read-adapter.js";
import { LowrankError } from "../errors/lowrank-error.js";
import { Checkpoint } from "../formats/checkpoint.js";
import { float32Tensor, toFloat32 } from "../formats/safetensors/dtype.js";
import { readSafetensors } from "../formats/safetensors/safetensors-file.js";
import { writeSafetensors } from "../formats/safetensors/write-safetensors.js";
import { mergeLora, unmergeLora } from "../math/merge.js";
import { FIXTURE_PAIRS } from "../testing/fixture-pairs.js";
import { maxAbsDiff, requireFixture } from "../testing/fixtures.js";
import { loadFixtureModel } from "../testing/load-fixture-model.js";
import { mergeCheckpoint } from "./merge-checkpoint.js";

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "lowrank-merge-"));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe("merging reproduces PEFT's merge_and_unload", () => {
  test.each(FIXTURE_PAIRS.map((p) => [p.adapter, p] as const))("%s: every merged.* tensor within 1e-5, the rest unchanged", async (_, pair) => {
    const out = path.join(tmp, pair.adapter);
    const adapter = await readAdapter(requireFixture(pair.adapter));
    const result = await mergeCheckpoint({ baseDir: requireFixture(pair.base), adapter, outDir: out });
    const cases = (await readSafetensors(requireFixture("cases", `${pair.cases}.safetensors`))).tensors;
    const expectedKeys = [...cases.keys()].filter((k) => k.startsWith("merged.")).map((k) => k.slice(7));
    const merged = await Checkpoint.open(out);
    const base = await Checkpoint.open(requireFixture(pair.base));
    try {
      expect([...merged.tensorInfo().keys()].sort()).toEqual([...base.tensorInfo().keys()].sort());
      for (const key of merged.tensorInfo().keys()) {
        const got = await merged.readFloat32(key);
        if (expectedKeys.includes(key)) {
          const want = toFloat32(cases.get(`merged.${key}`)!);
          const tolerance = 1e-5 + 1e-6 * Math.max(...want.map(Math.abs));
          expect(maxAbsDiff(got, want), key).toBeLessThanOrEqual(tolerance);
        } else {
          expect(maxAbsDiff(got, await base.readFloat32(key)), key).toBe(0);
        }
      }
      expect(merged.config).toEqual(base.config);
    } finally {
      await merged.close();
      await base.close();
    }
    expect(result.mergedModules.length + result.replacedTensors.length).toBeGreaterThan(0);
    expect((await readdir(out)).sort()).toEqual((await readdir(requireFixture(pair.base))).filter((f) => !f.endsWith(".onnx")).sort());
  });

  // 1e-6, plus the float32 rounding the merged values themselves carry (the embedding fixture's
  // merged values reach 43, where adjacent float32 numbers are 3.8e-6 apart).
  test.each(FIXTURE_PAIRS.map((p) => [p.adapter, p] as const))(
    "%s: unmerge restores the base within 1e-6 (+ float32 rounding of the merged values)",
    async (_, pair) => {
      const adapter = await readAdapter(requireFixture(pair.adapter));
      const model = await loadFixtureModel(pair.base);
      const bound = bindAdapter(adapter, model);
      const base = await Checkpoint.open(requireFixture(pair.base));
      try {
        for (const m of bound.modules) {
          const original = await base.readFloat32(m.plan.module.weightKey!);
          const weight = original.slice();
          const record = mergeLora(weight, m.factors);
          expect(maxAbsDiff(weight, original)).toBeGreaterThan(1e-4);
          const roundoff = 2 ** -23 * Math.max(...weight.map(Math.abs));
          unmergeLora(weight, m.factors, record);
          expect(maxAbsDiff(weight, original), m.plan.name).toBeLessThanOrEqual(1e-6 + roundoff);
        }
      } finally {
        await base.close();
      }
    },
  );
});

describe("merge refuses bad input and writes nothing", () => {
  async function expectNothingWritten(run: () => Promise<unknown>, code: string, message: RegExp): Promise<void> {
    const out = path.join(tmp, `bad-${Math.random().toString(36).slice(2)}`);
    await expect(
      run().then(
        () => undefined,
        (e) => Promise.reject(e),
      ),
    ).rejects.toMatchObject({ code });
    await expect(run()).rejects.toThrow(message);
    await expect(readdir(out)).rejects.toThrow();
    expect((await readdir(tmp)).filter((f) => f.startsWith("."))).toEqual([]);
  }

  test("adapter for another base: shapes do not fit", async () => {
    const adapter = await readAdapter(requireFixture("gpt2-tiny-lora"));
    const out = path.join(tmp, "never-1");
    await expectNothingWritten(() => mergeCheckpoint({ baseDir: requireFixture("llama-tiny"), adapter, outDir: out }), "TARGET_NOT_FOUND", /matched no module/);
  });

  test("factor shapes that do not fit the base layer", async () => {
    const adapter = await readAdapter(requireFixture("gpt2-tiny-lora"));
    const key = "base_model.model.transformer.h.0.attn.c_attn.lora_A.weight";
    adapter.tensors.set(key, float32Tensor(new Float32Array(4 * 32), [4, 32]));
    await expectNothingWritten(
      () => mergeCheckpoint({ baseDir: requireFixture("gpt2-tiny"), adapter, outDir: path.join(tmp, "never-2") }),
      "SHAPE_MISMATCH",
      /module "transformer.h.0.attn.c_attn": factors \[4, 32\] · \[192, 4\] do not fit the base layer \(in 64, out 192\)/,
    );
  });

  test("rank that disagrees with the config", async () => {
    const adapter = await readAdapter(requireFixture("gpt2-tiny-lora"));
    adapter.config = { ...adapter.config, r: 8 };
    await expectNothingWritten(
      () => mergeCheckpoint({ baseDir: requireFixture("gpt2-tiny"), adapter, outDir: path.join(tmp, "never-3") }),
      "SHAPE_MISMATCH",
      /lora_A has rank 4 but the config gives r = 8/,
    );
  });

  test("safe merge refuses non-finite results", async () => {
    const adapter = await readAdapter(requireFixture("gpt2-tiny-lora"));
    const key = "base_model.model.transformer.h.1.mlp.c_proj.lora_B.weight";
    const b = toFloat32(adapter.tensors.get(key)!);
    b[5] = Infinity;
    adapter.tensors.set(key, float32Tensor(b, adapter.tensors.get(key)!.shape));
    await expectNothingWritten(
      () => mergeCheckpoint({ baseDir: requireFixture("gpt2-tiny"), adapter, outDir: path.join(tmp, "never-4"), safe: true }),
      "MERGE_NOT_FINITE",
      /non-finite/,
    );
  });

  test("a modules_to_save tensor the base does not have", async () => {
    const adapter = await readAdapter(requireFixture("roberta-tiny-lora"));
    adapter.tensors.set("base_model.model.score.weight", float32Tensor(new Float32Array(3), [3]));
    await expectNothingWritten(
      () => mergeCheckpoint({ baseDir: requireFixture("roberta-tiny"), adapter, outDir: path.join(tmp, "never-5") }),
      "ADAPTER_INVALID",
      /replaces "score.weight", which the base model does not have/,
    );
  });

  test("an existing output folder keeps its other files and gets complete new ones", async () => {
    const out = path.join(tmp, "existing");
    await mkdir(out);
    await writeFile(path.join(out, "notes.txt"), "keep me");
    await mergeCheckpoint({ baseDir: requireFixture("gpt2-tiny"), adapter: await readAdapter(requireFixture("gpt2-tiny-lora")), outDir: out });
    expect(await readFile(path.join(out, "notes.txt"), "utf8")).toBe("keep me");
    expect((await readdir(out)).sort()).toEqual(["config.json", "generation_config.json", "model.safetensors", "notes.txt"]);
  });
});

describe("sharded and half-precision checkpoints", () => {
  test("a sharded BF16 base merges shard by shard with the base's dtype and index", async () => {
    const baseDir = path.join(tmp, "sharded-base");
    await mkdir(baseDir);
    const { tensors } = await readSafetensors(requireFixture("llama-tiny", "model.safetensors"));
    const { fromFloat32 } = await import("../formats/safetensors/dtype.js");
    const names = [...tensors.keys()];
    const shards = [new Map(), new Map()] as Map<string, ReturnType<typeof float32Tensor>>[];
    const weightMap: Record<string, string> = {};
    names.forEach((name, i) => {
      const t = tensors.get(name)!;
      const file = `model-0000${(i % 2) + 1}-of-00002.safetensors`;
      shards[i % 2]!.set(name, { dtype: "BF16", shape: t.shape, data: fromFloat32(toFloat32(t), "BF16") });
      weightMap[name] = file;
    });
    await writeSafetensors(path.join(baseDir, "model-00001-of-00002.safetensors"), shards[0]!, { format: "pt" });
    await writeSafetensors(path.join(baseDir, "model-00002-of-00002.safetensors"), shards[1]!, { format: "pt" });
    await writeFile(path.join(baseDir, "model.safetensors.index.json"), JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }));
    await copyFile(requireFixture("llama-tiny", "config.json"), path.join(baseDir, "config.json"));

    const out = path.join(tmp, "sharded-merged");
    await mergeCheckpoint({ baseDir, adapter: await readAdapter(requireFixture("llama-tiny-lora")), outDir: out });
    expect((await readdir(out)).sort()).toEqual([
      "config.json",
      "model-00001-of-00002.safetensors",
      "model-00002-of-00002.safetensors",
      "model.safetensors.index.json",
    ]);
    const merged = await Checkpoint.open(out);
    const cases = (await readSafetensors(requireFixture("cases", "llama-tiny-lora.safetensors"))).tensors;
    try {
      const key = "model.layers.0.self_attn.q_proj.weight";
      expect(merged.tensorInfo().get(key)!.dtype).toBe("BF16");
      const want = toFloat32(cases.get(`merged.${key}`)!);
      // BF16 keeps 8 bits of mantissa: compare at its resolution.
      expect(maxAbsDiff(await merged.readFloat32(key), want)).toBeLessThan(0.01 * Math.max(...want.map(Math.abs)));
    } finally {
      await merged.close();
    }
  });
});

test("LowrankError is what bad input raises", () => {
  expect(new LowrankError("USAGE", "x").usage).toBe(true);
});

describe("review regressions", () => {
  test("a bare-model checkpoint (no `transformer.` prefix) takes an adapter made on the LM-head model", async () => {
    const dir = path.join(tmp, "bare-gpt2");
    await mkdir(dir);
    const { tensors } = await readSafetensors(requireFixture("gpt2-tiny", "model.safetensors"));
    await writeSafetensors(path.join(dir, "model.safetensors"), new Map([...tensors].map(([k, t]) => [k.replace(/^transformer\./, ""), t])), { format: "pt" });
    await writeFile(
      path.join(dir, "config.json"),
      JSON.stringify({ ...JSON.parse(await readFile(requireFixture("gpt2-tiny", "config.json"), "utf8")), architectures: ["GPT2Model"] }),
    );
    const out = path.join(tmp, "bare-merged");
    await mergeCheckpoint({ baseDir: dir, adapter: await readAdapter(requireFixture("gpt2-tiny-lora")), outDir: out });
    const cases = (await readSafetensors(requireFixture("cases", "gpt2-tiny-lora.safetensors"))).tensors;
    const merged = await Checkpoint.open(out);
    try {
      expect(
        maxAbsDiff(await merged.readFloat32("h.0.attn.c_attn.weight"), toFloat32(cases.get("merged.transformer.h.0.attn.c_attn.weight")!)),
      ).toBeLessThanOrEqual(1e-5);
    } finally {
      await merged.close();
    }
  });

  test("merging into a folder that holds other weights leaves no stale weight file beside the new ones", async () => {
    const out = path.join(tmp, "stale");
    await mkdir(out);
    await copyFile(requireFixture("gpt2-tiny", "model.safetensors"), path.join(out, "model-old.safetensors"));
    await writeFile(path.join(out, "keep.txt"), "x");
    await mergeCheckpoint({ baseDir: requireFixture("gpt2-tiny"), adapter: await readAdapter(requireFixture("gpt2-tiny-lora")), outDir: out });
    expect((await readdir(out)).sort()).toEqual(["config.json", "generation_config.json", "keep.txt", "model.safetensors"]);
  });
});
