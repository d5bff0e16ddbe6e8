import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import * as ort from "onnxruntime-node";
import { afterAll, describe, expect, test } from "vitest";
import { float32Tensor, readAdapter, readSafetensors, silentLogger, toFloat32, writeSafetensors, type Tensor } from "@lowrank/core";
import { SeededRandom } from "@lowrank/core/internal";
import { idRows, maxAbsDiff, requireFixture } from "@lowrank/core/testing";
import { TfjsBackend } from "@lowrank/backend-tfjs";
import { encodeModel } from "../onnx/onnx-codec.js";
import { OnnxLoraSession } from "../session/onnx-lora-session.js";
import { buildEncoderGraph } from "./encoder-graph.js";

const tmp = mkdtempSync(path.join(os.tmpdir(), "lowrank-encoder-graph-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const feedsOf = (ids: number[][], mask: number[][]) => {
  const tensor = (rows: number[][]) => new ort.Tensor("int64", BigInt64Array.from(rows.flat(), BigInt), [rows.length, rows[0]!.length]);
  return { input_ids: tensor(ids), attention_mask: tensor(mask) };
};

/** Largest difference of hidden states [b, s, d] at the positions where the mask is 1 (padded ones are whatever transformers computes there). */
function maskedDiff(got: Float32Array, want: Float32Array, mask: number[][]): number {
  if (got.length !== want.length) return Infinity;
  const width = want.length / (mask.length * mask[0]!.length);
  let worst = 0;
  mask.forEach((row, b) =>
    row.forEach((m, s) => {
      if (!m) return;
      const at = (b * row.length + s) * width;
      worst = Math.max(worst, maxAbsDiff(got.subarray(at, at + width), want.subarray(at, at + width)));
    }),
  );
  return worst;
}

async function open(dir: string, adapters: Record<string, Awaited<ReturnType<typeof readAdapter>>> = {}): Promise<OnnxLoraSession> {
  return OnnxLoraSession.create(encodeModel(await buildEncoderGraph(dir)), { label: dir, modelDir: dir, adapters });
}

const PAIRS = [
  { base: "roberta-tiny", adapter: "roberta-tiny-lora" },
  { base: "deberta-v2-tiny", adapter: "deberta-v2-tiny-lora" },
];

describe.each(PAIRS)("the ONNX graph built from $base's checkpoint, with $adapter", ({ base, adapter }) => {
  test("base, runtime-adapted and merged logits and hidden states match PEFT within 1e-4", async () => {
    const cases = (await readSafetensors(requireFixture("cases", `${adapter}.safetensors`))).tensors;
    const ids = idRows(cases.get("input_ids")!);
    const mask = idRows(cases.get("attention_mask")!);
    expect(mask.flat()).toContain(0);
    const session = await open(requireFixture(base), { a: await readAdapter(requireFixture(adapter)) });
    try {
      const check = async (which: "base" | "adapted" | "merged", name: string | null) => {
        const out = await session.run(feedsOf(ids, mask), { adapter: name });
        expect(out.logits!.dims).toEqual([ids.length, 3]);
        expect(maxAbsDiff(out.logits!.data as Float32Array, toFloat32(cases.get(`${which}_logits`)!)), `${which}_logits`).toBeLessThanOrEqual(1e-4);
        const hidden = toFloat32(cases.get(`${which}_last_hidden_state`)!);
        expect(out.last_hidden_state!.dims).toEqual([ids.length, ids[0]!.length, 64]);
        expect(maskedDiff(out.last_hidden_state!.data as Float32Array, hidden, mask), `${which}_last_hidden_state`).toBeLessThanOrEqual(1e-4);
      };
      await check("base", null);
      await check("adapted", "a");
      await session.merge("a");
      await check("merged", "a");
      await check("base", null);
    } finally {
      await session.release();
    }
  });
});

/** A checkpoint folder of random float32 tensors (LayerNorm weights around 1). */
async function checkpoint(name: string, config: Record<string, unknown>, shapes: Record<string, number[]>, seed = 11): Promise<string> {
  const dir = path.join(tmp, name);
  mkdirSync(dir);
  writeFileSync(path.join(dir, "config.json"), JSON.stringify(config));
  const rng = new SeededRandom(seed);
  const tensors = new Map<string, Tensor>();
  for (const [key, shape] of Object.entries(shapes)) {
    const values = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => (key.includes("LayerNorm.weight") ? 1 : 0) + rng.normal() * 0.2);
    tensors.set(key, float32Tensor(values, shape));
  }
  await writeSafetensors(path.join(dir, "model.safetensors"), tensors, { format: "pt" });
  return dir;
}

function encoderShapes(prefix: string, layers: number, names: [string, number, number][], hidden: number): Record<string, number[]> {
  const s: Record<string, number[]> = {};
  for (let i = 0; i < layers; i++) {
    for (const [name, out, inn] of names) {
      s[`${prefix}encoder.layer.${i}.${name}.weight`] = [out, inn];
      s[`${prefix}encoder.layer.${i}.${name}.bias`] = [out];
    }
    for (const n of ["attention.output.LayerNorm", "output.LayerNorm"]) {
      s[`${prefix}encoder.layer.${i}.${n}.weight`] = [hidden];
      s[`${prefix}encoder.layer.${i}.${n}.bias`] = [hidden];
    }
  }
  return s;
}

const IDS = [
  [2, 5, 7, 11, 3, 9, 0, 0, 0, 0, 0, 0, 0, 0],
  [2, 5, 7, 9, 4, 8, 13, 21, 1, 17, 6, 19, 12, 3],
];
const MASK = IDS.map((row, b) => row.map((_, s) => (b === 0 && s >= 6 ? 0 : 1)));

/** The tfjs backend's logits and last_hidden_state against the ONNX graph's, on the same checkpoint. */
async function compareWithTfjs(dir: string): Promise<void> {
  const tfjs = new TfjsBackend();
  await tfjs.init({ logger: silentLogger });
  const session = await open(dir);
  try {
    const want = await tfjs.predict({ model: dir, inputIds: IDS, attentionMask: MASK });
    const got = await session.run(feedsOf(IDS, MASK));
    expect(got.logits!.dims).toEqual(want.logits.shape);
    expect(maxAbsDiff(got.logits!.data as Float32Array, want.logits.data), "logits").toBeLessThanOrEqual(1e-4);
    expect(maskedDiff(got.last_hidden_state!.data as Float32Array, want.lastHiddenState!.data, MASK), "last_hidden_state").toBeLessThanOrEqual(1e-4);
    // The padded row's logits equal the unpadded sequence's.
    const alone = await session.run(feedsOf([IDS[0]!.slice(0, 6)], [MASK[0]!.slice(0, 6)]));
    expect(maxAbsDiff(alone.logits!.data as Float32Array, (got.logits!.data as Float32Array).slice(0, want.logits.shape[1]))).toBeLessThanOrEqual(1e-5);
  } finally {
    await session.release();
    await tfjs.dispose();
  }
}

describe("random checkpoints against the tfjs backend", () => {
  const bertNames: [string, number, number][] = [
    ["attention.self.query", 16, 16],
    ["attention.self.key", 16, 16],
    ["attention.self.value", 16, 16],
    ["attention.output.dense", 16, 16],
    ["intermediate.dense", 24, 16],
    ["output.dense", 16, 24],
  ];
  const bertConfig = { model_type: "bert", hidden_size: 16, num_attention_heads: 4, num_hidden_layers: 2, intermediate_size: 24, pad_token_id: 0 };
  const bertShapes = (prefix: string): Record<string, number[]> => ({
    [`${prefix}embeddings.word_embeddings.weight`]: [30, 16],
    [`${prefix}embeddings.position_embeddings.weight`]: [20, 16],
    [`${prefix}embeddings.token_type_embeddings.weight`]: [2, 16],
    [`${prefix}embeddings.LayerNorm.weight`]: [16],
    [`${prefix}embeddings.LayerNorm.bias`]: [16],
    ...encoderShapes(prefix, 2, bertNames, 16),
    [`${prefix}pooler.dense.weight`]: [16, 16],
    [`${prefix}pooler.dense.bias`]: [16],
  });

  test("BERT for sequence classification (pooler → classifier, positions from 0, token type 0, padding masked)", async () => {
    const shapes = { ...bertShapes("bert."), "classifier.weight": [2, 16], "classifier.bias": [2] };
    await compareWithTfjs(await checkpoint("bert", { ...bertConfig, architectures: ["BertForSequenceClassification"] }, shapes));
  });

  test("a bare BERT encoder has last_hidden_state as its only output, the same as with a head", async () => {
    const bare = await checkpoint("bert-bare", { ...bertConfig, architectures: ["BertModel"] }, bertShapes(""));
    const headed = await checkpoint("bert-headed", bertConfig, { ...bertShapes(""), "classifier.weight": [2, 16], "classifier.bias": [2] });
    const model = await buildEncoderGraph(bare);
    expect(model.graph.output.map((o) => o.name)).toEqual(["last_hidden_state"]);
    const [a, b] = [await open(bare), await open(headed)];
    try {
      const hidden = async (s: OnnxLoraSession) => (await s.run(feedsOf(IDS, MASK))).last_hidden_state!.data as Float32Array;
      expect(maxAbsDiff(await hidden(a), await hidden(b))).toBe(0);
    } finally {
      await a.release();
      await b.release();
    }
  });

  const debertaShapes = (names: [string, number, number][], extra: Record<string, number[]>): Record<string, number[]> => ({
    "deberta.embeddings.word_embeddings.weight": [30, 12],
    "deberta.embeddings.LayerNorm.weight": [16],
    "deberta.embeddings.LayerNorm.bias": [16],
    ...encoderShapes("deberta.", 2, names, 16),
    "pooler.dense.weight": [16, 16],
    "pooler.dense.bias": [16],
    "classifier.weight": [3, 16],
    "classifier.bias": [3],
    ...extra,
  });
  const debertaNames = (pos: string[]): [string, number, number][] => [
    ...["query_proj", "key_proj", "value_proj", ...pos].map((p): [string, number, number] => [`attention.self.${p}`, 16, 16]),
    ["attention.output.dense", 16, 16],
    ["intermediate.dense", 24, 16],
    ["output.dense", 16, 24],
  ];
  const debertaConfig = {
    model_type: "deberta-v2",
    architectures: ["DebertaV2ForSequenceClassification"],
    hidden_size: 16,
    embedding_size: 12,
    num_attention_heads: 2,
    num_hidden_layers: 2,
    intermediate_size: 24,
    max_position_embeddings: 20,
    pad_token_id: 0,
  };

  test("DeBERTa-v2: own pos_key_proj / pos_query_proj, log buckets, positions and token types in the input, embed_proj, the convolution layer", async () => {
    const dir = await checkpoint(
      "deberta-conv",
      {
        ...debertaConfig,
        relative_attention: true,
        pos_att_type: "p2c|c2p",
        share_att_key: false,
        position_buckets: 8,
        max_relative_positions: 12,
        norm_rel_ebd: "none",
        position_biased_input: true,
        type_vocab_size: 2,
        conv_kernel_size: 3,
        conv_act: "gelu",
        hidden_act: "gelu_new",
        pooler_hidden_act: "tanh",
      },
      debertaShapes(debertaNames(["pos_key_proj", "pos_query_proj"]), {
        "deberta.embeddings.position_embeddings.weight": [20, 12],
        "deberta.embeddings.token_type_embeddings.weight": [2, 12],
        "deberta.embeddings.embed_proj.weight": [16, 12],
        "deberta.encoder.rel_embeddings.weight": [16, 16],
        "deberta.encoder.conv.conv.weight": [16, 16, 3],
        "deberta.encoder.conv.conv.bias": [16],
        "deberta.encoder.conv.LayerNorm.weight": [16],
        "deberta.encoder.conv.LayerNorm.bias": [16],
      }),
    );
    await compareWithTfjs(dir);
  });

  test("DeBERTa-v2: c2p only without buckets (distances clamped to the table), shared keys, a LayerNorm'd table larger than needed", async () => {
    const dir = await checkpoint(
      "deberta-c2p",
      {
        ...debertaConfig,
        embedding_size: 16,
        relative_attention: true,
        pos_att_type: ["c2p"],
        share_att_key: true,
        max_relative_positions: 4,
        norm_rel_ebd: "layer_norm",
        position_biased_input: false,
      },
      debertaShapes(debertaNames([]), {
        "deberta.embeddings.word_embeddings.weight": [30, 16],
        "deberta.encoder.rel_embeddings.weight": [12, 16],
        "deberta.encoder.LayerNorm.weight": [16],
        "deberta.encoder.LayerNorm.bias": [16],
      }),
    );
    await compareWithTfjs(dir);
  });

  test("DeBERTa-v2 without relative attention still scales by the listed position terms", async () => {
    const dir = await checkpoint(
      "deberta-plain",
      { ...debertaConfig, relative_attention: false, pos_att_type: "c2p|p2c", position_biased_input: true },
      debertaShapes(debertaNames([]), { "deberta.embeddings.position_embeddings.weight": [20, 12], "deberta.embeddings.embed_proj.weight": [16, 12] }),
    );
    await compareWithTfjs(dir);
  });
});

test("a model type without an encoder graph builder is one clear line naming the folder", async () => {
  await expect(buildEncoderGraph(requireFixture("gpt2-tiny"))).rejects.toThrow(
    /gpt2-tiny: model_type "gpt2" has no ONNX encoder graph builder \(supported: bert, roberta, xlm-roberta, deberta-v2\)$/,
  );
});
