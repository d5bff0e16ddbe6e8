import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { float32Tensor, writeSafetensors, type Tensor } from "@lowrank/core";
import { SeededRandom } from "@lowrank/core/internal";
import { maxAbsDiff } from "@lowrank/core/testing";
import { selectEngine } from "../engine/select-engine.js";
import { inferenceContext } from "../layers/lora-branch.js";
import { loadModel } from "./load-model.js";
import { robertaPositionIds } from "./bert.js";

const tmp = mkdtempSync(path.join(os.tmpdir(), "lowrank-arch-"));
beforeAll(async () => {
  await selectEngine();
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function checkpoint(name: string, config: Record<string, unknown>, shapes: Record<string, number[]>): Promise<string> {
  const dir = path.join(tmp, name);
  mkdirSync(dir);
  writeFileSync(path.join(dir, "config.json"), JSON.stringify(config));
  const rng = new SeededRandom(name.length);
  const tensors = new Map<string, Tensor>();
  for (const [key, shape] of Object.entries(shapes)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const values = Float32Array.from({ length: n }, () => (key.endsWith("norm.weight") || key.includes("LayerNorm.weight") ? 1 : 0) + rng.normal() * 0.1);
    tensors.set(key, float32Tensor(values, shape));
  }
  await writeSafetensors(path.join(dir, "model.safetensors"), tensors, { format: "pt" });
  return dir;
}

function logits(model: Awaited<ReturnType<typeof loadModel>>, ids: number[][], mask?: number[][]): Float32Array {
  return tf.tidy(
    () => model.forward({ inputIds: tf.tensor2d(ids, undefined, "int32"), attentionMask: mask }, inferenceContext()).logits.dataSync() as Float32Array,
  );
}

describe("LLaMA family variants", () => {
  const shapes = (bias: boolean): Record<string, number[]> => {
    const s: Record<string, number[]> = { "model.embed_tokens.weight": [40, 16], "model.norm.weight": [16] };
    s["model.layers.0.input_layernorm.weight"] = [16];
    s["model.layers.0.post_attention_layernorm.weight"] = [16];
    for (const [p, out] of [
      ["q_proj", 16],
      ["k_proj", 8],
      ["v_proj", 8],
    ] as const) {
      s[`model.layers.0.self_attn.${p}.weight`] = [out, 16];
      if (bias) s[`model.layers.0.self_attn.${p}.bias`] = [out];
    }
    s["model.layers.0.self_attn.o_proj.weight"] = [16, 16];
    s["model.layers.0.mlp.gate_proj.weight"] = [24, 16];
    s["model.layers.0.mlp.up_proj.weight"] = [24, 16];
    s["model.layers.0.mlp.down_proj.weight"] = [16, 24];
    return s;
  };
  const config = (type: string) => ({
    model_type: type,
    architectures: ["Qwen2ForCausalLM"],
    hidden_size: 16,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    num_hidden_layers: 1,
    intermediate_size: 24,
    rms_norm_eps: 1e-6,
    rope_theta: 1e6,
    tie_word_embeddings: true,
    vocab_size: 40,
  });

  test("qwen2: q/k/v biases are applied, and the tied head reuses the embedding", async () => {
    const withBias = await loadModel(await checkpoint("qwen2", config("qwen2"), shapes(true)));
    expect(withBias.linears.get("lm_head")?.weightKey).toBe("model.embed_tokens.weight");
    const ids = [[1, 5, 9, 3]];
    const a = logits(withBias, ids);
    // Zeroing the biases must change the output: they are not ignored.
    for (const p of ["q_proj", "k_proj", "v_proj"]) withBias.store.set(`model.layers.0.self_attn.${p}.bias`, tf.zeros([p === "q_proj" ? 16 : 8]));
    expect(maxAbsDiff(a, logits(withBias, ids))).toBeGreaterThan(1e-4);
  });

  test("rope_scaling linear divides positions; an unknown type is a clear error", async () => {
    const dir = await checkpoint("mistral", config("mistral"), shapes(false));
    const scaledDir = path.join(tmp, "mistral-linear");
    mkdirSync(scaledDir);
    copyFileSync(path.join(dir, "model.safetensors"), path.join(scaledDir, "model.safetensors"));
    writeFileSync(path.join(scaledDir, "config.json"), JSON.stringify({ ...config("mistral"), rope_scaling: { type: "linear", factor: 2 } }));
    const base = await loadModel(dir);
    const scaled = await loadModel(scaledDir);
    const vocab = 40;
    const a = logits(base, [[1, 2, 3]]);
    const b = logits(scaled, [[1, 2, 3]]);
    // Position 0 has no rotation either way; later positions rotate by half the angle.
    expect(maxAbsDiff(a.slice(0, vocab), b.slice(0, vocab))).toBeLessThan(1e-6);
    expect(maxAbsDiff(a.slice(vocab), b.slice(vocab))).toBeGreaterThan(1e-4);
    await expect(
      loadModel(await checkpoint("mistral-yarn", { ...config("mistral"), rope_scaling: { rope_type: "yarn", factor: 4 } }, shapes(false))),
    ).rejects.toThrow(/`rope_scaling` type "yarn" is not supported/);
  });
});

describe("BERT", () => {
  test("sequence classification through the pooler, padding masked, positions counted from 0", async () => {
    const s: Record<string, number[]> = {
      "bert.embeddings.word_embeddings.weight": [30, 8],
      "bert.embeddings.position_embeddings.weight": [16, 8],
      "bert.embeddings.token_type_embeddings.weight": [2, 8],
      "bert.embeddings.LayerNorm.weight": [8],
      "bert.embeddings.LayerNorm.bias": [8],
      "bert.pooler.dense.weight": [8, 8],
      "bert.pooler.dense.bias": [8],
      "classifier.weight": [2, 8],
      "classifier.bias": [2],
    };
    for (const [name, out, inn] of [
      ["attention.self.query", 8, 8],
      ["attention.self.key", 8, 8],
      ["attention.self.value", 8, 8],
      ["attention.output.dense", 8, 8],
      ["intermediate.dense", 12, 8],
      ["output.dense", 8, 12],
    ] as const) {
      s[`bert.encoder.layer.0.${name}.weight`] = [out, inn];
      s[`bert.encoder.layer.0.${name}.bias`] = [out];
    }
    for (const n of ["attention.output.LayerNorm", "output.LayerNorm"]) {
      s[`bert.encoder.layer.0.${n}.weight`] = [8];
      s[`bert.encoder.layer.0.${n}.bias`] = [8];
    }
    const model = await loadModel(
      await checkpoint(
        "bert",
        {
          model_type: "bert",
          architectures: ["BertForSequenceClassification"],
          hidden_size: 8,
          num_attention_heads: 2,
          num_hidden_layers: 1,
          intermediate_size: 12,
          pad_token_id: 0,
        },
        s,
      ),
    );
    expect(model.task).toBe("seq-cls");
    const out = logits(
      model,
      [
        [2, 5, 7, 0, 0],
        [2, 5, 7, 9, 4],
      ],
      [
        [1, 1, 1, 0, 0],
        [1, 1, 1, 1, 1],
      ],
    );
    expect(out).toHaveLength(4);
    // Padded keys are masked: the first row equals the same sequence without padding.
    const unpadded = logits(model, [[2, 5, 7]]);
    expect(maxAbsDiff(out.slice(0, 2), unpadded)).toBeLessThan(1e-5);
  });

  test("RoBERTa position ids skip padding", () => {
    expect(robertaPositionIds([[0, 5, 6, 2, 1, 1]], 1)).toEqual([[2, 3, 4, 5, 1, 1]]);
  });
});
