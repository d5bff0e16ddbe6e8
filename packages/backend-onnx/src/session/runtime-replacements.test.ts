import { readFile } from "node:fs/promises";
import { describe, expect, test } from "vitest";
import type * as ort from "onnxruntime-node";
import { Checkpoint, float32Tensor, readAdapter, readSafetensors, toFloat32, type LoraAdapter, type Tensor } from "@lowrank/core";
import { PEFT_PREFIX, SeededRandom } from "@lowrank/core/internal";
import { captureLowrankError, captureLowrankRejection, idRows, maxAbsDiff, requireFixture } from "@lowrank/core/testing";
import { decodeModel, encodeModel } from "../onnx/onnx-codec.js";
import { mergeIntoOnnxModel } from "../onnx/merge-onnx.js";
import { createOrtSession, idsTensor } from "./ort-session.js";
import { OnnxLoraSession } from "./onnx-lora-session.js";

const logitsOf = async (p: Promise<ort.InferenceSession.OnnxValueMapType>): Promise<Float32Array> => (await p).logits!.data as Float32Array;

/** gpt2-tiny-lora turned into an adapter that also trained whole tensors: every bias ("all"), or ln_f (modules_to_save). */
async function withReplacements(kind: "bias-all" | "modules-to-save", seed: number): Promise<LoraAdapter> {
  const lora = await readAdapter(requireFixture("gpt2-tiny-lora"));
  const base = await Checkpoint.open(requireFixture("gpt2-tiny"));
  const rng = new SeededRandom(seed);
  const tensors = new Map<string, Tensor>(lora.tensors);
  const targeted = (key: string) => /\.(c_attn|c_proj)\.bias$/.test(key);
  try {
    for (const [key, info] of base.tensorInfo()) {
      const wanted = kind === "bias-all" ? key.endsWith(".bias") : key.startsWith("transformer.ln_f.");
      if (!wanted) continue;
      const values = toFloat32(await base.read(key)).map((x) => x + 0.3 * (rng.next() - 0.5));
      const name = targeted(key) ? key.replace(/\.bias$/, ".base_layer.bias") : key;
      tensors.set(`${PEFT_PREFIX}${name}`, float32Tensor(values, info.shape));
    }
  } finally {
    await base.close();
  }
  const config = kind === "bias-all" ? { ...lora.config, bias: "all" as const } : { ...lora.config, modules_to_save: ["ln_f"] };
  return { config, tensors };
}

async function offlineLogits(adapter: LoraAdapter, feeds: Record<string, ort.Tensor>): Promise<Float32Array> {
  const file = requireFixture("gpt2-tiny", "model.onnx");
  const merged = mergeIntoOnnxModel(decodeModel(await readFile(file), file), adapter, { modelDir: requireFixture("gpt2-tiny") }).model;
  const { session } = await createOrtSession(encodeModel(merged));
  try {
    return await logitsOf(session.run(feeds));
  } finally {
    await session.release();
  }
}

describe("adapters that replace whole tensors run unmerged, switched per run", () => {
  test("trained biases (bias: all) and modules_to_save equal the offline merge; the base stays the base", async () => {
    const cases = (await readSafetensors(requireFixture("cases", "gpt2-tiny-lora.safetensors"))).tensors;
    const feeds = { input_ids: idsTensor(idRows(cases.get("input_ids")!)) };
    const biases = await withReplacements("bias-all", 1);
    const saved = await withReplacements("modules-to-save", 2);
    const plain = await readAdapter(requireFixture("gpt2-tiny-lora"));
    const session = await OnnxLoraSession.create(requireFixture("gpt2-tiny", "model.onnx"), { adapters: { biases, saved, plain } });
    try {
      expect(session.modelInputs()).toEqual(["input_ids"]);
      for (const [name, adapter] of [
        ["biases", biases],
        ["saved", saved],
      ] as const) {
        const runtime = await logitsOf(session.run(feeds, { adapter: name }));
        expect(maxAbsDiff(runtime, await offlineLogits(adapter, feeds)), name).toBeLessThanOrEqual(1e-4);
        // The replaced tensors matter: without them the result is the plain LoRA's.
        expect(maxAbsDiff(runtime, toFloat32(cases.get("adapted_logits")!)), name).toBeGreaterThan(1e-2);
      }
      expect(maxAbsDiff(await logitsOf(session.run(feeds, { adapter: null })), toFloat32(cases.get("base_logits")!))).toBeLessThanOrEqual(1e-4);
      expect(maxAbsDiff(await logitsOf(session.run(feeds, { adapter: "plain" })), toFloat32(cases.get("adapted_logits")!))).toBeLessThanOrEqual(1e-4);

      // A mixed batch: each row with its own replaced tensors.
      const ids = idRows(cases.get("input_ids")!);
      const mixed = (await session.runMixed({ input_ids: idsTensor([ids[0]!, ids[0]!, ids[0]!]) }, ["biases", null, "saved"])).logits!.data as Float32Array;
      const per = mixed.length / 3;
      const alone = async (name: string | null) => await logitsOf(session.run({ input_ids: idsTensor([ids[0]!]) }, { adapter: name }));
      expect(maxAbsDiff(mixed.slice(0, per), await alone("biases"))).toBeLessThanOrEqual(1e-5);
      expect(maxAbsDiff(mixed.slice(per, 2 * per), await alone(null))).toBeLessThanOrEqual(1e-5);
      expect(maxAbsDiff(mixed.slice(2 * per), await alone("saved"))).toBeLessThanOrEqual(1e-5);

      // Summing two adapters that both replace tensors is refused, as PEFT refuses it.
      expect((await captureLowrankRejection(session.run(feeds, { adapter: ["biases", "saved"] }))).message).toMatch(
        /adapters "biases" and "saved" both replace whole tensors/,
      );
      // One replacing adapter summed with a plain one is fine.
      await session.run(feeds, { adapter: ["biases", "plain"] });
    } finally {
      await session.release();
    }
  });

  test("an adapter loaded later may replace only tensors the session was made replaceable for", async () => {
    const biases = await withReplacements("bias-all", 3);
    const session = await OnnxLoraSession.create(requireFixture("gpt2-tiny", "model.onnx"), {
      slots: [
        { name: "transformer.h.0.attn.c_attn", inFeatures: 64, outFeatures: 192 },
        { name: "transformer.h.1.attn.c_attn", inFeatures: 64, outFeatures: 192 },
        { name: "transformer.h.0.attn.c_proj", inFeatures: 64, outFeatures: 64 },
        { name: "transformer.h.1.attn.c_proj", inFeatures: 64, outFeatures: 64 },
        { name: "transformer.h.0.mlp.c_proj", inFeatures: 256, outFeatures: 64 },
        { name: "transformer.h.1.mlp.c_proj", inFeatures: 256, outFeatures: 64 },
      ],
    });
    try {
      expect(captureLowrankError(() => session.loadAdapter("late", biases)).message).toMatch(
        /adapter "late" replaces ".*bias".*create the session with this adapter \(or list the tensor in `replaceable`\)/,
      );
    } finally {
      await session.release();
    }
    const replaceable = [...biases.tensors.keys()].filter((k) => k.endsWith("bias")).map((k) => k.slice(PEFT_PREFIX.length).replace(".base_layer.", "."));
    const open = await OnnxLoraSession.create(requireFixture("gpt2-tiny", "model.onnx"), {
      adapters: { plain: await readAdapter(requireFixture("gpt2-tiny-lora")) },
      replaceable,
    });
    try {
      open.loadAdapter("late", biases);
      const cases = (await readSafetensors(requireFixture("cases", "gpt2-tiny-lora.safetensors"))).tensors;
      const feeds = { input_ids: idsTensor(idRows(cases.get("input_ids")!)) };
      expect(maxAbsDiff(await logitsOf(open.run(feeds, { adapter: "late" })), await offlineLogits(biases, feeds))).toBeLessThanOrEqual(1e-4);
    } finally {
      await open.release();
    }
  });
});
