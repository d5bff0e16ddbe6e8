/**
 * Test-only: the tfjs backend's sequence-classification loss and gradients, the reference the ONNX
 * encoder training graphs are checked against, with a padded batch maker and the gradient check.
 */
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { expect } from "vitest";
import { float32Tensor, writeSafetensors, type Tensor } from "@lowrank/core";
import { SeededRandom } from "@lowrank/core/internal";
import { maxAbsDiff } from "@lowrank/core/testing";
import type { TfjsModel } from "@lowrank/backend-tfjs";
import type { TrainableSet } from "@lowrank/backend-tfjs/internal";

/** Rows of `lengths` real tokens (bos first, eos last, random ids between), right-padded with `pad`; the padding mask. */
export function batchOf(lengths: number[], vocab: number, pad: number, seed: number): { ids: number[][]; mask: number[][] } {
  const rng = new SeededRandom(seed);
  const width = Math.max(...lengths);
  const ids = lengths.map((n) =>
    Array.from({ length: width }, (_, t) => (t >= n ? pad : t === 0 ? 0 : t === n - 1 ? 2 : 3 + Math.floor(rng.next() * (vocab - 3)))),
  );
  return { ids, mask: lengths.map((n) => Array.from({ length: width }, (_, t) => (t < n ? 1 : 0))) };
}

/** The tfjs backend's classification loss (its trainer's: mean cross-entropy over the rows) and the gradients of a trainable set. */
export function tfjsClassification(model: TfjsModel, training: TrainableSet, ids: number[][], mask: number[][], classes: number[]) {
  const names = new Map([...training.variables].map(([key, v]) => [v.name, key]));
  let logits: Float32Array = new Float32Array();
  const { value, grads } = tf.variableGrads(
    () =>
      tf.tidy(() => {
        const out = model.forward({ inputIds: tf.tensor2d(ids, undefined, "int32"), attentionMask: mask }, { training: true, seed: 0, dropoutCalls: 0 });
        const x = out.logits as tf.Tensor2D;
        logits = x.dataSync() as Float32Array;
        const picked = tf.sum(tf.mul(x, tf.oneHot(classes, x.shape[1]).toFloat()), 1);
        return tf.mean(tf.sub(tf.logSumExp(x, 1), picked)) as tf.Scalar;
      }),
    [...training.variables.values()],
  );
  const loss = value.dataSync()[0]!;
  const byKey = new Map(Object.entries(grads).map(([name, g]) => [names.get(name)!, g.dataSync() as Float32Array]));
  tf.dispose([value, ...Object.values(grads)]);
  return { loss, logits, grads: byKey };
}

/** Each gradient within 1e-4 of its tensor's largest |value|, none all zero, the same keys on both sides. */
export function expectGradients(ours: ReadonlyMap<string, Float32Array>, theirs: ReadonlyMap<string, Float32Array>): number {
  expect([...ours.keys()].sort()).toEqual([...theirs.keys()].sort());
  let worst = 0;
  for (const [key, grad] of theirs) {
    // A key bias shifts each query's scores by a constant, which the softmax removes: its gradient is 0 up to rounding. So
    // does DeBERTa's pos_key_proj bias (content→position: q·(W·row + b)).
    if (/attention\.self\.(key|pos_key_proj)\.bias$/.test(key)) {
      expect(maxAbsDiff(ours.get(key)!, grad), key).toBeLessThanOrEqual(1e-6);
      continue;
    }
    const scale = grad.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    expect(scale, key).toBeGreaterThan(0);
    const diff = maxAbsDiff(ours.get(key)!, grad);
    expect(diff, key).toBeLessThanOrEqual(1e-4 * scale);
    worst = Math.max(worst, diff / scale);
  }
  return worst;
}

/** Writes a checkpoint folder of random float32 tensors (normal, σ 0.2; LayerNorm weights around 1) with `config` into `dir`. */
export async function randomCheckpoint(dir: string, config: Record<string, unknown>, shapes: Record<string, number[]>, seed = 11): Promise<string> {
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, "config.json"), JSON.stringify(config));
  const rng = new SeededRandom(seed);
  const tensors = new Map<string, Tensor>();
  for (const [key, shape] of Object.entries(shapes)) {
    const values = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => (key.includes("LayerNorm.weight") ? 1 : 0) + rng.normal() * 0.2);
    tensors.set(key, float32Tensor(values, shape));
  }
  await writeSafetensors(path.join(dir, "model.safetensors"), tensors, { format: "pt" });
  return dir;
}
