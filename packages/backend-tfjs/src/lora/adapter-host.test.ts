import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, test } from "vitest";
import { readAdapter, readSafetensors, toFloat32, type LoraAdapter } from "@lowrank/core";
import { parseAdapterKey } from "@lowrank/core/internal";
import { captureLowrankError, idRows, maxAbsDiff, perturbedAdapter, requireFixture } from "@lowrank/core/testing";
import { selectEngine } from "../engine/select-engine.js";
import { inferenceContext } from "../layers/lora-branch.js";
import { loadModel } from "../models/load-model.js";
import type { TfjsModel } from "../models/model.js";
import { AdapterHost, BASE_ROWS } from "./adapter-host.js";
import { attachAdapter, detachAdapter } from "./attach-adapter.js";

beforeAll(async () => {
  await selectEngine();
});

const logits = (model: TfjsModel, ids: number[][], run?: (input: { inputIds: tf.Tensor2D }) => { logits: tf.Tensor }): Float32Array =>
  tf.tidy(() => {
    const input = { inputIds: tf.tensor2d(ids, undefined, "int32") };
    return (run ? run(input) : model.forward(input, inferenceContext())).logits.dataSync() as Float32Array;
  });

/** The rows of a [b, ...] logits array. */
const row = (values: Float32Array, b: number, rows: number): Float32Array => values.slice((values.length / rows) * b, (values.length / rows) * (b + 1));

/** Logits with exactly these adapters attached one at a time through the single-adapter API. */
async function alone(base: string, adapter: LoraAdapter | undefined, ids: number[][]): Promise<Float32Array> {
  const model = await loadModel(requireFixture(base));
  const attached = adapter && attachAdapter(model, adapter);
  const out = logits(model, ids);
  if (attached) detachAdapter(model, attached);
  model.store.dispose();
  return out;
}

describe("AdapterHost (PEFT's multi-adapter model) on tfjs", () => {
  test("load, switch, sum, disable, delete, merge and unmerge", async () => {
    const cases = (await readSafetensors(requireFixture("cases", "gpt2-tiny-lora.safetensors"))).tensors;
    const ids = idRows(cases.get("input_ids")!);
    const a = await readAdapter(requireFixture("gpt2-tiny-lora"));
    const b = perturbedAdapter(a, { seed: 3, only: "c_attn" });
    const model = await loadModel(requireFixture("gpt2-tiny"));
    const host = new AdapterHost(model);
    host.load("a", a);
    host.load("b", b);
    expect(host.names).toEqual(["a", "b"]);
    expect(host.active).toEqual(["a"]);
    expect(maxAbsDiff(logits(model, ids), toFloat32(cases.get("adapted_logits")!))).toBeLessThanOrEqual(1e-4);

    host.setActive("b");
    expect(maxAbsDiff(logits(model, ids), await alone("gpt2-tiny", b, ids))).toBeLessThanOrEqual(1e-5);

    // Two active adapters add their deltas: the same as merging both into the weights.
    host.setActive(["a", "b"]);
    const summed = logits(model, ids);
    expect(maxAbsDiff(summed, await alone("gpt2-tiny", a, ids))).toBeGreaterThan(1e-3);
    host.merge();
    expect(host.isMerged).toBe(true);
    expect(maxAbsDiff(logits(model, ids), summed)).toBeLessThanOrEqual(1e-4);
    expect(() => host.setActive("a")).toThrow(/while they are merged/);
    host.unmerge();
    expect(maxAbsDiff(logits(model, ids), summed)).toBe(0);

    // Disabled: the exact base model (bit for bit).
    const base = await alone("gpt2-tiny", undefined, ids);
    host.disable();
    expect(maxAbsDiff(logits(model, ids), base)).toBe(0);
    host.enable();
    expect(maxAbsDiff(logits(model, ids), summed)).toBe(0);

    // Deleting the active adapter activates the first remaining one.
    host.setActive("a");
    host.delete("a");
    expect(host.names).toEqual(["b"]);
    expect(host.active).toEqual(["b"]);
    expect(maxAbsDiff(logits(model, ids), await alone("gpt2-tiny", b, ids))).toBeLessThanOrEqual(1e-5);
    host.delete("b");
    expect(maxAbsDiff(logits(model, ids), base)).toBe(0);
  });

  test("a mixed batch gives, row by row, what each row gives with its adapter alone", async () => {
    const a = await readAdapter(requireFixture("gpt2-tiny-lora"));
    const b = perturbedAdapter(a, { seed: 3, only: "c_attn" });
    const ids = [
      [5, 9, 200, 31, 7, 88],
      [1, 2, 3, 4, 5, 6],
      [400, 12, 77, 3, 3, 90],
      [5, 9, 200, 31, 7, 88],
    ];
    const names = ["a", null, "b", BASE_ROWS];
    const model = await loadModel(requireFixture("gpt2-tiny"));
    const host = new AdapterHost(model);
    host.load("a", a);
    host.load("b", b);
    const mixed = tf.tidy(() => host.forward({ inputIds: tf.tensor2d(ids, undefined, "int32") }, { adapterNames: names }).logits.dataSync() as Float32Array);
    const expected = [
      await alone("gpt2-tiny", a, ids),
      await alone("gpt2-tiny", undefined, ids),
      await alone("gpt2-tiny", b, ids),
      await alone("gpt2-tiny", undefined, ids),
    ];
    for (let r = 0; r < ids.length; r++) expect(maxAbsDiff(row(mixed, r, ids.length), row(expected[r]!, r, ids.length)), `row ${r}`).toBeLessThanOrEqual(1e-5);
    // Rows 0 and 3 share ids but not adapters.
    expect(maxAbsDiff(row(mixed, 0, 4), row(mixed, 3, 4))).toBeGreaterThan(1e-3);
    // The active adapter does not leak into a mixed batch.
    expect(host.active).toEqual(["a"]);
  });

  test("modules_to_save copies follow the active adapter, and the base comes back when it is not", async () => {
    const cases = (await readSafetensors(requireFixture("cases", "roberta-tiny-lora.safetensors"))).tensors;
    const ids = idRows(cases.get("input_ids")!);
    const mask = idRows(cases.get("attention_mask")!);
    const withHead = await readAdapter(requireFixture("roberta-tiny-lora"));
    const plain: LoraAdapter = {
      config: { ...withHead.config, modules_to_save: null },
      tensors: new Map([...withHead.tensors].filter(([k]) => parseAdapterKey(k)?.role !== "replacement" && parseAdapterKey(k) !== undefined)),
    };
    const model = await loadModel(requireFixture("roberta-tiny"));
    const run = () =>
      tf.tidy(
        () => model.forward({ inputIds: tf.tensor2d(ids, undefined, "int32"), attentionMask: mask }, inferenceContext()).logits.dataSync() as Float32Array,
      );
    const baseLogits = run();
    const host = new AdapterHost(model);
    host.load("head", withHead);
    host.load("plain", plain);
    expect(maxAbsDiff(run(), toFloat32(cases.get("adapted_logits")!))).toBeLessThanOrEqual(1e-4);
    host.setActive("plain");
    const reference = await loadModel(requireFixture("roberta-tiny"));
    attachAdapter(reference, plain);
    const plainLogits = tf.tidy(
      () => reference.forward({ inputIds: tf.tensor2d(ids, undefined, "int32"), attentionMask: mask }, inferenceContext()).logits.dataSync() as Float32Array,
    );
    expect(maxAbsDiff(run(), plainLogits)).toBeLessThanOrEqual(1e-6);
    host.disable();
    expect(maxAbsDiff(run(), baseLogits)).toBe(0);
    host.enable();
    host.setActive("head");
    expect(maxAbsDiff(run(), toFloat32(cases.get("adapted_logits")!))).toBeLessThanOrEqual(1e-4);

    host.load("head2", withHead);
    expect(captureLowrankError(() => host.setActive(["head", "head2"])).message).toMatch(/adapters "head" and "head2" both replace whole modules/);
    expect(captureLowrankError(() => host.forward({ inputIds: tf.tensor2d(ids, undefined, "int32") }, { adapterNames: ["plain", "plain"] })).message).toMatch(
      /active adapter "head" replaces whole modules/,
    );
    host.disable();
    expect(captureLowrankError(() => host.forward({ inputIds: tf.tensor2d(ids, undefined, "int32") }, { adapterNames: ["head", null] })).message).toMatch(
      /adapter "head" replaces whole modules \(modules_to_save\); a mixed batch/,
    );
  });

  test("clear errors: duplicate and unknown names, DoRA in a mixed batch, wrong row count", async () => {
    const model = await loadModel(requireFixture("gpt2-tiny"));
    const host = new AdapterHost(model);
    const a = await readAdapter(requireFixture("gpt2-tiny-lora"));
    host.load("a", a);
    host.load("dora", await readAdapter(requireFixture("gpt2-tiny-dora")));
    const inputIds = tf.tensor2d(
      [
        [1, 2],
        [3, 4],
      ],
      undefined,
      "int32",
    );
    expect(captureLowrankError(() => host.load("a", a)).message).toMatch(/adapter "a" is already loaded/);
    expect(captureLowrankError(() => host.setActive("nope")).message).toBe('adapter "nope" is not loaded (loaded: a, dora)');
    expect(captureLowrankError(() => host.forward({ inputIds }, { adapterNames: ["a"] })).message).toBe("adapterNames has 1 entries for a batch of 2 rows");
    expect(captureLowrankError(() => host.forward({ inputIds }, { adapterNames: ["dora", "a"] })).message).toMatch(
      /adapter "dora" is DoRA; a mixed batch supports plain LoRA/,
    );
    expect(captureLowrankError(() => host.load(BASE_ROWS, a)).message).toMatch(/names the base model's rows/);
    host.merge();
    expect(captureLowrankError(() => host.forward({ inputIds }, { adapterNames: ["a", null] })).message).toMatch(/needs unmerged adapters/);
  });
});
