import { beforeAll, describe, expect, test } from "vitest";
import { Checkpoint, createLoraConfig, describeModel, readAdapter, readSafetensors, toFloat32, type LoraConfig } from "@lowrank/core";
import { SeededRandom } from "@lowrank/core/internal";
import { idRows, maxAbsDiff, requireFixture } from "@lowrank/core/testing";
import { loadModel, selectEngine } from "@lowrank/backend-tfjs";
import { createLoraTraining } from "@lowrank/backend-tfjs/internal";
import { trainingArchitecture } from "./architectures.js";
import { loadReferenceGpt2, referenceLoss, type ReferenceGpt2, type ReferenceLora } from "./gpt2-float64-reference.test-util.js";
import { initialFactors, planLoraSlots, type TrainingSlot } from "./lora-plan.js";
import { tfjsLossAndGradients } from "./tfjs-gradients.test-util.js";
import { buildTrainingGraph } from "./training-graph.js";
import { openGraphSession, runBatch, type BatchResult } from "./training-session.js";

const dir = requireFixture("gpt2-tiny");
// Every GPT-2 projection adapted ("c_proj" matches attn.c_proj and mlp.c_proj), B random so that
// every gradient is non-trivial; a rank pattern and rsLoRA give modules different ranks and scalings.
const config: LoraConfig = createLoraConfig({
  r: 4,
  lora_alpha: 8,
  target_modules: ["c_attn", "c_proj", "c_fc"],
  init_lora_weights: false,
  fan_in_fan_out: true,
  use_rslora: true,
  rank_pattern: { "h.1.mlp.c_fc": 2 },
  task_type: "CAUSAL_LM",
});
const seed = 3;
// Two rows, the second right-padded as the trainer pads (labels −100 on padding).
const rng = new SeededRandom(12);
const lengths = [11, 7];
const width = Math.max(...lengths);
const ids = lengths.map((n) => Array.from({ length: width }, (_, t) => (t < n ? Math.floor(rng.next() * 511) : 0)));
const labels = ids.map((row, b) => row.map((id, t) => (t < lengths[b]! ? id : -100)));

let slots: TrainingSlot[];
let onnx: BatchResult;
let dropped: BatchResult;
let factors: Map<string, Float32Array>;
/** Fixed inverted-dropout masks (p = 0.25) for the graph built with dropout inputs. */
const masks = new Map<string, Float32Array>();

beforeAll(async () => {
  const cp = await Checkpoint.open(dir);
  const architecture = trainingArchitecture(cp.config, dir);
  ({ slots } = planLoraSlots({ config, description: describeModel(cp.config, cp.tensorInfo()), supported: architecture.supports, label: dir }));
  await cp.close();
  const { session } = await openGraphSession(await buildTrainingGraph({ dir, architecture, slots, dropout: false, gradients: true }), {});
  factors = initialFactors(slots, config, seed);
  onnx = await runBatch(session, { slots, ids, labels, factors, gradients: true });
  await session.release();
  const maskRng = new SeededRandom(31);
  for (const s of slots)
    masks.set(
      s.module,
      Float32Array.from({ length: ids.length * width * s.inFeatures }, () => (maskRng.next() < 0.25 ? 0 : 1 / 0.75)),
    );
  const withDropout = await openGraphSession(await buildTrainingGraph({ dir, architecture, slots, dropout: true, gradients: true }), {});
  dropped = await runBatch(withDropout.session, { slots, ids, labels, factors, masks, gradients: true });
  await withDropout.session.release();
});

describe("the ONNX training graph's gradients (GPT-2)", () => {
  let reference: ReferenceGpt2;
  beforeAll(async () => {
    reference = await loadReferenceGpt2(dir);
  });

  test("the float64 reference is GPT-2: it reproduces PEFT's adapted logits", async () => {
    const cases = (await readSafetensors(requireFixture("cases", "gpt2-tiny-lora.safetensors"))).tensors;
    const adapter = await readAdapter(requireFixture("gpt2-tiny-lora"));
    const caseIds = idRows(cases.get("input_ids")!);
    const lora: ReferenceLora[] = [];
    const values = new Map<string, Float64Array>();
    for (const [key, t] of adapter.tensors) values.set(key, Float64Array.from(toFloat32(t)));
    for (const key of adapter.tensors.keys()) {
      if (!key.endsWith(".lora_A.weight")) continue;
      const module = key.slice("base_model.model.".length, -".lora_A.weight".length);
      lora.push({ module, aKey: key, bKey: key.replace("lora_A", "lora_B"), r: adapter.config.r, scaling: adapter.config.lora_alpha / adapter.config.r });
    }
    const { logits } = referenceLoss(reference, lora, values, caseIds, caseIds);
    expect(maxAbsDiff(Float32Array.from(logits), toFloat32(cases.get("adapted_logits")!))).toBeLessThanOrEqual(1e-4);
  });

  test.each([
    ["without dropout", false],
    ["with lora_dropout masks", true],
  ])("loss and every A/B gradient match central finite differences of the float64 reference (%s)", (_, withMasks) => {
    const result = withMasks ? dropped : onnx;
    const lora: ReferenceLora[] = slots.map((s) => ({
      module: s.module,
      aKey: s.aKey,
      bKey: s.bKey,
      r: s.r,
      scaling: s.scaling,
      mask: withMasks ? masks.get(s.module) : undefined,
    }));
    const point = new Map([...factors].map(([k, v]) => [k, Float64Array.from(v)]));
    const loss = (values: Map<string, Float64Array>) => referenceLoss(reference, lora, values, ids, labels).loss;
    const exact = loss(point);
    expect(Math.abs(result.loss - exact)).toBeLessThanOrEqual(1e-5 * exact);
    if (withMasks) expect(Math.abs(result.loss - onnx.loss)).toBeGreaterThan(1e-4);
    const pick = new SeededRandom(99);
    const h = 1e-4;
    for (const [key, grad] of result.grads) {
      const scale = grad.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      expect(scale, key).toBeGreaterThan(0);
      for (let n = 0; n < 8; n++) {
        const i = Math.floor(pick.next() * grad.length);
        const x = point.get(key)!;
        const saved = x[i]!;
        x[i] = saved + h;
        const up = loss(point);
        x[i] = saved - h;
        const down = loss(point);
        x[i] = saved;
        const fd = (up - down) / (2 * h);
        // The float64 central difference is exact to ~h²·f‴ ≈ 1e-8; the float32 graph's rounding
        // (sums over tokens and 64–256 features, ε = 6e-8) stays near 1e-6 of the tensor's largest
        // gradient (observed ≤ 1.6e-6): 2e-5 leaves room and still catches any wrong term, which is
        // off by a large fraction of the gradient.
        expect(Math.abs(grad[i]! - fd), `${key}[${i}]: onnx ${grad[i]}, finite difference ${fd}`).toBeLessThanOrEqual(2e-5 * scale);
      }
    }
  });
});

describe("the ONNX training graph against the tfjs backend (GPT-2)", () => {
  test("same initial factors, same loss, and every A/B gradient within 1e-4 relative", async () => {
    await selectEngine();
    const model = await loadModel(dir);
    const training = createLoraTraining(model, config, { seed });
    try {
      expect([...training.variables.keys()].sort()).toEqual([...factors.keys()].sort());
      for (const [key, variable] of training.variables) expect(maxAbsDiff(variable.dataSync() as Float32Array, factors.get(key)!), key).toBe(0);
      const theirs = tfjsLossAndGradients(model, training, ids, labels);
      expect(Math.abs(theirs.loss - onnx.loss)).toBeLessThanOrEqual(1e-5 * onnx.loss);
      expect([...theirs.grads.keys()].sort()).toEqual([...training.variables.keys()].sort());
      for (const [key, grad] of theirs.grads) {
        const scale = grad.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        expect(maxAbsDiff(onnx.grads.get(key)!, grad), key).toBeLessThanOrEqual(1e-4 * scale);
      }
    } finally {
      model.store.dispose();
    }
  });
});
