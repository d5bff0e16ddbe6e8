import { describe, expect, test } from "vitest";
import { Checkpoint, createLoraConfig, describeModel } from "@lowrank/core";
import { requireFixture } from "@lowrank/core/testing";
import { trainingArchitecture } from "./architectures.js";
import { gradientName, initialFactors, planLoraSlots } from "./lora-plan.js";
import { buildTrainingGraph } from "./training-graph.js";
import { openGraphSession, runBatch } from "./training-session.js";

describe("the training graph", () => {
  test("has no Transpose of a weight, standard operators only, and the same results with external weight data", async () => {
    const dir = requireFixture("gpt2-tiny");
    const cp = await Checkpoint.open(dir);
    const architecture = trainingArchitecture(cp.config, dir);
    const config = createLoraConfig({ r: 4, lora_alpha: 8, target_modules: ["c_attn", "c_proj", "c_fc"], init_lora_weights: false });
    const { slots } = planLoraSlots({ config, description: describeModel(cp.config, cp.tensorInfo()), supported: architecture.supports, label: dir });
    const weights = new Set(cp.tensorInfo().keys());
    await cp.close();
    const model = await buildTrainingGraph({ dir, architecture, slots, dropout: false, gradients: true });
    const { graph } = model;
    expect(graph.node.every((n) => !n.domain)).toBe(true);
    expect(graph.node.filter((n) => n.op_type === "Transpose" && n.input.some((i) => weights.has(i)))).toEqual([]);
    // Each weight is one initializer (the tied head is the token embedding itself).
    expect(
      graph.initializer
        .filter((t) => weights.has(t.name))
        .map((t) => t.name)
        .sort(),
    ).toEqual([...weights].sort());
    expect(graph.output.map((o) => o.name)).toEqual(["loss", "tokens", ...slots.flatMap((s) => [gradientName(s.aKey), gradientName(s.bKey)])]);

    const factors = initialFactors(slots, config, 1);
    const batch = {
      slots,
      ids: [
        [5, 6, 7, 8],
        [9, 10, 0, 0],
      ],
      labels: [
        [5, 6, 7, 8],
        [9, 10, -100, -100],
      ],
      factors,
      gradients: true,
    };
    const inline = await openGraphSession(model, {});
    const external = await openGraphSession(model, { external: true });
    const [a, b] = [await runBatch(inline.session, batch), await runBatch(external.session, batch)];
    expect(b.loss).toBe(a.loss);
    expect(a.predicted).toBe(4);
    for (const [key, g] of a.grads) expect(b.grads.get(key)).toEqual(g);
    await inline.session.release();
    await external.session.release();
  });

  test.each([
    ["mistral-sw-tiny", ["q_proj", "v_proj", "down_proj"], 1],
    ["phi3-tiny", ["qkv_proj", "gate_up_proj"], 1],
    // Gemma-2's even layers have the window, the odd ones none: two masks for three layers.
    ["gemma2-tiny", ["q_proj", "v_proj", "down_proj"], 2],
  ])("%s: standard operators only, no Transpose of a weight, one causal mask per distinct window", async (fixture, modules, masks) => {
    const dir = requireFixture(fixture);
    const cp = await Checkpoint.open(dir);
    const architecture = trainingArchitecture(cp.config, dir);
    const config = createLoraConfig({ r: 4, lora_alpha: 8, target_modules: modules });
    const { slots } = planLoraSlots({ config, description: describeModel(cp.config, cp.tensorInfo()), supported: architecture.supports, label: dir });
    const weights = new Set(cp.tensorInfo().keys());
    await cp.close();
    const { graph } = await buildTrainingGraph({ dir, architecture, slots, dropout: false, gradients: true });
    expect(graph.node.every((n) => !n.domain)).toBe(true);
    expect(graph.node.filter((n) => n.op_type === "Transpose" && n.input.some((i) => weights.has(i)))).toEqual([]);
    expect(graph.node.filter((n) => n.name.startsWith("/mask/Expand"))).toHaveLength(masks);
    expect(graph.output.map((o) => o.name)).toEqual(["loss", "tokens", ...slots.flatMap((s) => [gradientName(s.aKey), gradientName(s.bKey)])]);
  });
});
