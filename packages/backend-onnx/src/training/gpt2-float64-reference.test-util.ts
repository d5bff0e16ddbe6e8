/**
 * Test-only: GPT-2's causal-LM loss with LoRA in float64 plain TypeScript, written independently of
 * the ONNX graph (row-major loops, no ONNX), for finite-difference gradient checks.
 */
import { Checkpoint, LowrankError } from "@lowrank/core";

export interface ReferenceGpt2 {
  layers: number;
  heads: number;
  d: number;
  vocab: number;
  eps: number;
  w: Map<string, Float64Array>;
}

export interface ReferenceLora {
  module: string;
  aKey: string;
  bKey: string;
  r: number;
  scaling: number;
  /** An inverted-dropout mask [tokens, in] on the LoRA branch's input. */
  mask?: Float32Array;
}

export async function loadReferenceGpt2(dir: string): Promise<ReferenceGpt2> {
  const cp = await Checkpoint.open(dir);
  try {
    const w = new Map<string, Float64Array>();
    for (const name of cp.tensorInfo().keys()) w.set(name, Float64Array.from(await cp.readFloat32(name)));
    const c = cp.config as Record<string, number | undefined>;
    const num = (key: string): number => {
      const value = c[key];
      if (value === undefined) throw new LowrankError("CHECKPOINT_INVALID", `${dir}: config.json has no \`${key}\``);
      return value;
    };
    return { layers: num("n_layer"), heads: num("n_head"), d: num("n_embd"), vocab: num("vocab_size"), eps: c.layer_norm_epsilon ?? 1e-5, w };
  } finally {
    await cp.close();
  }
}

/** y[n, out] = x[n, in]·W[in, out] + b. */
function conv1d(x: Float64Array, n: number, W: Float64Array, b: Float64Array, inF: number, outF: number): Float64Array {
  const y = new Float64Array(n * outF);
  for (let i = 0; i < n; i++) {
    for (let o = 0; o < outF; o++) y[i * outF + o] = b[o]!;
    for (let k = 0; k < inF; k++) {
      const xv = x[i * inF + k]!;
      for (let o = 0; o < outF; o++) y[i * outF + o]! += xv * W[k * outF + o]!;
    }
  }
  return y;
}

/** y += scaling·(x·Aᵀ)·Bᵀ. */
function addLora(y: Float64Array, x: Float64Array, n: number, A: Float64Array, B: Float64Array, r: number, inF: number, outF: number, s: number): void {
  for (let i = 0; i < n; i++) {
    const u = new Float64Array(r);
    for (let j = 0; j < r; j++) for (let k = 0; k < inF; k++) u[j]! += x[i * inF + k]! * A[j * inF + k]!;
    for (let o = 0; o < outF; o++) {
      let acc = 0;
      for (let j = 0; j < r; j++) acc += u[j]! * B[o * r + j]!;
      y[i * outF + o]! += s * acc;
    }
  }
}

function layerNorm(x: Float64Array, n: number, d: number, g: Float64Array, b: Float64Array, eps: number): Float64Array {
  const y = new Float64Array(n * d);
  for (let i = 0; i < n; i++) {
    let mean = 0;
    for (let k = 0; k < d; k++) mean += x[i * d + k]!;
    mean /= d;
    let v = 0;
    for (let k = 0; k < d; k++) v += (x[i * d + k]! - mean) ** 2;
    const inv = 1 / Math.sqrt(v / d + eps);
    for (let k = 0; k < d; k++) y[i * d + k] = (x[i * d + k]! - mean) * inv * g[k]! + b[k]!;
  }
  return y;
}

const gelu = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));

/** Mean next-token cross-entropy over labels ≥ 0 (labels −100 ignored), and the logits [b·s, vocab]. */
export function referenceLoss(
  m: ReferenceGpt2,
  lora: readonly ReferenceLora[],
  factors: ReadonlyMap<string, Float64Array>,
  ids: number[][],
  labels: number[][],
): { loss: number; logits: Float64Array } {
  const { d, heads, vocab } = m;
  const bsz = ids.length;
  const seq = ids[0]!.length;
  const n = bsz * seq;
  const dh = d / heads;
  const W = (k: string) => m.w.get(k)!;
  const linear = (module: string, x: Float64Array, inF: number, outF: number) => {
    const y = conv1d(x, n, W(`${module}.weight`), W(`${module}.bias`), inF, outF);
    const l = lora.find((e) => e.module === module);
    if (l) addLora(y, l.mask ? x.map((v, i) => v * l.mask![i]!) : x, n, factors.get(l.aKey)!, factors.get(l.bKey)!, l.r, inF, outF, l.scaling);
    return y;
  };
  let h = new Float64Array(n * d);
  const wte = W("transformer.wte.weight");
  const wpe = W("transformer.wpe.weight");
  for (let b = 0; b < bsz; b++)
    for (let t = 0; t < seq; t++) for (let k = 0; k < d; k++) h[(b * seq + t) * d + k] = wte[ids[b]![t]! * d + k]! + wpe[t * d + k]!;
  for (let layer = 0; layer < m.layers; layer++) {
    const p = `transformer.h.${layer}`;
    const a = layerNorm(h, n, d, W(`${p}.ln_1.weight`), W(`${p}.ln_1.bias`), m.eps);
    const qkv = linear(`${p}.attn.c_attn`, a, d, 3 * d);
    const o = new Float64Array(n * d);
    for (let b = 0; b < bsz; b++) {
      for (let hd = 0; hd < heads; hd++) {
        for (let i = 0; i < seq; i++) {
          const scores: number[] = [];
          for (let j = 0; j <= i; j++) {
            let dot = 0;
            for (let k = 0; k < dh; k++) dot += qkv[(b * seq + i) * 3 * d + hd * dh + k]! * qkv[(b * seq + j) * 3 * d + d + hd * dh + k]!;
            scores.push(dot / Math.sqrt(dh));
          }
          const max = Math.max(...scores);
          const e = scores.map((s) => Math.exp(s - max));
          const z = e.reduce((x, y) => x + y, 0);
          for (let j = 0; j <= i; j++)
            for (let k = 0; k < dh; k++) o[(b * seq + i) * d + hd * dh + k]! += (e[j]! / z) * qkv[(b * seq + j) * 3 * d + 2 * d + hd * dh + k]!;
        }
      }
    }
    const proj = linear(`${p}.attn.c_proj`, o, d, d);
    h = h.map((v, i) => v + proj[i]!);
    const mIn = layerNorm(h, n, d, W(`${p}.ln_2.weight`), W(`${p}.ln_2.bias`), m.eps);
    const inner = linear(`${p}.mlp.c_fc`, mIn, d, 4 * d).map(gelu);
    const out = linear(`${p}.mlp.c_proj`, inner, 4 * d, d);
    h = h.map((v, i) => v + out[i]!);
  }
  const x = layerNorm(h, n, d, W("transformer.ln_f.weight"), W("transformer.ln_f.bias"), m.eps);
  const logits = new Float64Array(n * vocab);
  for (let i = 0; i < n; i++)
    for (let v = 0; v < vocab; v++) {
      let acc = 0;
      for (let k = 0; k < d; k++) acc += x[i * d + k]! * wte[v * d + k]!;
      logits[i * vocab + v] = acc;
    }
  let total = 0;
  let count = 0;
  for (let b = 0; b < bsz; b++)
    for (let t = 0; t + 1 < seq; t++) {
      const target = labels[b]![t + 1]!;
      if (target < 0) continue;
      const row = logits.subarray((b * seq + t) * vocab, (b * seq + t + 1) * vocab);
      let max = -Infinity;
      for (const v of row) max = Math.max(max, v);
      let z = 0;
      for (const v of row) z += Math.exp(v - max);
      total += Math.log(z) + max - row[target]!;
      count += 1;
    }
  return { loss: total / Math.max(count, 1), logits };
}
