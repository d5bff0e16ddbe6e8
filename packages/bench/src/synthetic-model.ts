import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { SafetensorsWriter, SeededRandom } from "@lowrank/core/internal";

/** A GPT-2 shape: layers, width, heads, vocabulary and context. */
export interface Gpt2Shape {
  layers: number;
  hidden: number;
  heads: number;
  vocab: number;
  positions: number;
}

/** GPT-2 small (124M parameters), the paper's smallest GPT-2. */
export const GPT2_SMALL: Gpt2Shape = { layers: 12, hidden: 768, heads: 12, vocab: 50257, positions: 1024 };

function randomValues(n: number, rng: SeededRandom, scale: number): Float32Array {
  const values = new Float32Array(n);
  for (let i = 0; i < n; i++) values[i] = (rng.next() * 2 - 1) * scale;
  return values;
}

/**
 * Writes a Hugging Face GPT-2 folder (config.json + model.safetensors) with random weights of the
 * given shape: realistic sizes for timing and memory, no download. Tensors are made and written one
 * at a time, so a checkpoint larger than memory can be written.
 */
export async function writeRandomGpt2(dir: string, shape: Gpt2Shape, seed = 1): Promise<void> {
  const rng = new SeededRandom(seed);
  const { layers, hidden: h, heads, vocab, positions } = shape;
  const specs: { name: string; shape: number[]; make: () => Float32Array }[] = [];
  const put = (name: string, dims: number[], scale = 0.02): void =>
    void specs.push({
      name,
      shape: dims,
      make: () =>
        randomValues(
          dims.reduce((a, b) => a * b, 1),
          rng,
          scale,
        ),
    });
  const ones = (name: string): void => void specs.push({ name, shape: [h], make: () => new Float32Array(h).fill(1) });
  put("transformer.wte.weight", [vocab, h]);
  put("transformer.wpe.weight", [positions, h], 0.01);
  for (let i = 0; i < layers; i++) {
    const p = `transformer.h.${i}`;
    for (const ln of ["ln_1", "ln_2"]) {
      ones(`${p}.${ln}.weight`);
      put(`${p}.${ln}.bias`, [h], 0);
    }
    for (const [name, inF, outF] of [
      ["attn.c_attn", h, 3 * h],
      ["attn.c_proj", h, h],
      ["mlp.c_fc", h, 4 * h],
      ["mlp.c_proj", 4 * h, h],
    ] as const) {
      put(`${p}.${name}.weight`, [inF, outF]);
      put(`${p}.${name}.bias`, [outF], 0);
    }
  }
  ones("transformer.ln_f.weight");
  put("transformer.ln_f.bias", [h], 0);
  await mkdir(dir, { recursive: true });
  const config = {
    model_type: "gpt2",
    architectures: ["GPT2LMHeadModel"],
    n_layer: layers,
    n_head: heads,
    n_embd: h,
    n_positions: positions,
    n_ctx: positions,
    vocab_size: vocab,
    layer_norm_epsilon: 1e-5,
    activation_function: "gelu_new",
    bos_token_id: vocab - 1,
    eos_token_id: vocab - 1,
    tie_word_embeddings: true,
  };
  await writeFile(path.join(dir, "config.json"), `${JSON.stringify(config, null, 2)}\n`);
  const writer = await SafetensorsWriter.create(
    path.join(dir, "model.safetensors"),
    specs.map((s) => ({ name: s.name, dtype: "F32" as const, shape: s.shape })),
    { format: "pt" },
  );
  try {
    for (const spec of specs) {
      const values = spec.make();
      await writer.write(spec.name, new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
    }
    await writer.commit();
  } catch (error) {
    await writer.abort();
    throw error;
  }
}

/** A random adapter for a model folder (core's testing helper, shared with the benchmarks). */
export { randomAdapter } from "@lowrank/core/testing";
