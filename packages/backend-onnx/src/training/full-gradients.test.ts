import { describe, expect, test } from "vitest";
import { Checkpoint } from "@lowrank/core";
import { SeededRandom } from "@lowrank/core/internal";
import { maxAbsDiff, requireFixture } from "@lowrank/core/testing";
import { loadModel, selectEngine } from "@lowrank/backend-tfjs";
import { createFullTraining } from "@lowrank/backend-tfjs/internal";
import { trainingArchitecture } from "./architectures.js";
import { createOnnxFullTraining } from "./create-onnx-full-training.js";
import { gradientName } from "./lora-plan.js";
import { buildTrainingGraph, type TrainedParameter } from "./training-graph.js";
import { tfjsLossAndGradients } from "./tfjs-gradients.test-util.js";
import { runBatch } from "./training-session.js";

// 13-token rows with padding; repeated ids, so the embedding gradients add rows.
const rng = new SeededRandom(23);
const lengths = [13, 9, 12];
const ids = lengths.map((n) => Array.from({ length: 13 }, (_, t) => (t < n ? Math.floor(rng.next() * (t % 3 === 0 ? 16 : 512)) : 0)));
const labels = ids.map((row, b) => row.map((id, t) => (t < lengths[b]! ? id : -100)));

describe("full fine-tuning on ONNX Runtime: every parameter's gradient against the tfjs backend's", () => {
  test.each([
    ["gpt2-tiny (Conv1D [in, out], biases, LayerNorm, learned positions, tied head)"],
    ["llama-tiny (nn.Linear [out, in], RMSNorm, GQA, separate lm_head)"],
    ["mistral-sw-tiny (sliding window 4)"],
    ["phi3-tiny (fused qkv_proj and gate_up_proj)"],
    ["gemma-tiny (x·(1 + w) norms, scaled embeddings, tied head)"],
    ["gemma2-tiny (soft caps on the scores and the logits, sandwich norms)"],
  ])("%s: the loss within 1e-5 and every gradient within 1e-4 relative", async (title) => {
    await selectEngine();
    const dir = requireFixture(title.split(" ")[0]!);
    const training = await createOnnxFullTraining({ model: dir });
    let onnx;
    try {
      // Every parameter is a graph input (the arrays the optimizer updates), none an initializer.
      expect([...training.session.inputNames].sort()).toEqual(["input_ids", "target_mask", "targets", ...training.parameters.keys()].sort());
      onnx = await runBatch(training.session, { slots: [], ids, labels, factors: training.params, parameters: training.parameters, gradients: true });
    } finally {
      await training.release();
    }
    const model = await loadModel(dir);
    try {
      const tfjsTraining = createFullTraining(model);
      expect([...training.parameters.keys()].sort()).toEqual([...tfjsTraining.variables.keys()].sort());
      expect(training.trainableParameters).toBe(tfjsTraining.parameterCount);
      for (const [name, variable] of tfjsTraining.variables) expect(maxAbsDiff(variable.dataSync() as Float32Array, training.params.get(name)!), name).toBe(0);
      const theirs = tfjsLossAndGradients(model, tfjsTraining, ids, labels);
      expect(Math.abs(theirs.loss - onnx.loss)).toBeLessThanOrEqual(1e-5);
      expect(onnx.grads.size).toBe(theirs.grads.size);
      for (const [name, grad] of theirs.grads) {
        const scale = grad.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        expect(scale, name).toBeGreaterThan(0);
        expect(maxAbsDiff(onnx.grads.get(name)!, grad), name).toBeLessThanOrEqual(1e-4 * scale);
      }
    } finally {
      model.store.dispose();
    }
  });

  test.each(["gpt2-tiny", "llama-tiny", "gemma2-tiny"])(
    "%s: every checkpoint tensor a graph input with a gradient output, none an initializer; standard operators, no Transpose of a parameter, no OneHot",
    async (fixture) => {
      const dir = requireFixture(fixture);
      const cp = await Checkpoint.open(dir);
      const names = [...cp.tensorInfo().keys()];
      const architecture = trainingArchitecture(cp.config, dir);
      await cp.close();
      const parameters = new Map<string, TrainedParameter>();
      const { graph } = await buildTrainingGraph({ dir, architecture, slots: [], dropout: false, gradients: true, full: parameters });
      expect([...parameters.keys()].sort()).toEqual(names.sort());
      expect(graph.initializer.filter((t) => parameters.has(t.name))).toEqual([]);
      expect(graph.node.every((n) => !n.domain)).toBe(true);
      expect(graph.node.filter((n) => n.op_type === "OneHot" || (n.op_type === "Transpose" && n.input.some((i) => parameters.has(i))))).toEqual([]);
      expect(graph.output.map((o) => o.name)).toEqual(["loss", "tokens", ...[...parameters.keys()].map(gradientName)]);
    },
  );
});
