import { describe, expect, test } from "vitest";
import { loadFixtureModel } from "../testing/load-fixture-model.js";

describe("module trees of the fixture checkpoints", () => {
  test("GPT-2: Conv1D projections stored [in, out], learned embeddings, tied lm_head", async () => {
    const model = await loadFixtureModel("gpt2-tiny");
    expect(model.modelType).toBe("gpt2");
    expect(model.byName.get("transformer.h.0.attn.c_attn")).toMatchObject({
      kind: "conv1d",
      layout: "in_out",
      inFeatures: 64,
      outFeatures: 192,
      layerIndex: 0,
      biasKey: "transformer.h.0.attn.c_attn.bias",
    });
    expect(model.byName.get("transformer.h.1.mlp.c_proj")).toMatchObject({ kind: "conv1d", inFeatures: 256, outFeatures: 64, layerIndex: 1 });
    expect(model.byName.get("transformer.wte")).toMatchObject({ kind: "embedding", inFeatures: 512, outFeatures: 64 });
    expect(model.byName.get("transformer.h.0.ln_1")?.kind).toBe("norm");
    expect(model.byName.get("transformer.h.0.attn")?.kind).toBe("container");
    expect(model.byName.get("lm_head")).toMatchObject({ kind: "linear", tiedTo: "transformer.wte", isOutputHead: true, inFeatures: 64, outFeatures: 512 });
    expect(model.outputHead).toBe("lm_head");
  });

  test("modules come in named_modules() order: parents before children", async () => {
    const names = (await loadFixtureModel("gpt2-tiny")).modules.map((m) => m.name);
    expect(names.indexOf("transformer")).toBeLessThan(names.indexOf("transformer.h"));
    expect(names.indexOf("transformer.h.0")).toBeLessThan(names.indexOf("transformer.h.0.attn.c_attn"));
    expect(new Set(names).size).toBe(names.length);
  });

  test("LLaMA: Linear [out, in] with grouped-query k/v, untied lm_head", async () => {
    const model = await loadFixtureModel("llama-tiny");
    expect(model.byName.get("model.layers.0.self_attn.k_proj")).toMatchObject({ kind: "linear", layout: "out_in", inFeatures: 64, outFeatures: 32 });
    expect(model.byName.get("model.layers.1.mlp.down_proj")).toMatchObject({ inFeatures: 128, outFeatures: 64, layerIndex: 1 });
    expect(model.byName.get("model.embed_tokens")?.kind).toBe("embedding");
    expect(model.byName.get("lm_head")).toMatchObject({ kind: "linear", isOutputHead: true, weightKey: "lm_head.weight" });
    expect(model.byName.get("lm_head")?.tiedTo).toBeUndefined();
  });

  test("RoBERTa and DeBERTa-v2: embeddings, norms and the classification heads", async () => {
    const roberta = await loadFixtureModel("roberta-tiny");
    expect(roberta.byName.get("roberta.embeddings.position_embeddings")?.kind).toBe("embedding");
    expect(roberta.byName.get("roberta.embeddings.LayerNorm")?.kind).toBe("norm");
    expect(roberta.byName.get("classifier")?.kind).toBe("container");
    expect(roberta.byName.get("classifier.out_proj")).toMatchObject({ kind: "linear", inFeatures: 64, outFeatures: 3 });
    expect(roberta.outputHead).toBeUndefined();
    const deberta = await loadFixtureModel("deberta-v2-tiny");
    expect(deberta.byName.get("deberta.encoder.rel_embeddings")?.kind).toBe("embedding");
    expect(deberta.byName.get("classifier")).toMatchObject({ kind: "linear", outFeatures: 3 });
    expect(deberta.byName.get("pooler.dense")?.kind).toBe("linear");
  });
});
