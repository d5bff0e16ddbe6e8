import { moduleScope } from "../onnx/locate-weights.js";
import { Checkpoint, LowrankError } from "@lowrank/core";
import { floatValueInfo, ONNX_INT64, type ModelProto } from "../onnx/onnx-codec.js";
import { GraphBuilder } from "./graph-builder.js";
import protobuf from "protobufjs";
import { ONNX_PROTO } from "../onnx/onnx-proto.js";

const ModelProtoType = protobuf.parse(ONNX_PROTO, { keepCase: true }).root.lookupType("onnx.ModelProto");

function num(config: Record<string, unknown>, key: string, fallback?: number): number {
  const v = config[key];
  if (typeof v === "number") return v;
  if (fallback !== undefined) return fallback;
  throw new LowrankError("CHECKPOINT_INVALID", `config.json has no \`${key}\``);
}

/**
 * Exports a GPT-2 checkpoint (GPT2LMHeadModel layout, float32) to an ONNX model (opset 17) that
 * computes logits [batch, seq, vocab] from input_ids [batch, seq] — the graph torch.onnx produces
 * without constant folding: parameters as initializers under their PyTorch names, node names in
 * module scopes, the tied head as a Transpose of the token embedding. So lowrank's ONNX merge and
 * runtime adapters find every weight, and ONNX Runtime can serve checkpoints trained here.
 */
export async function exportGpt2Onnx(dir: string): Promise<ModelProto> {
  const checkpoint = await Checkpoint.open(dir);
  try {
    const config = checkpoint.config;
    if (config.model_type !== "gpt2")
      throw new LowrankError("CHECKPOINT_INVALID", `${dir}: model_type is ${JSON.stringify(config.model_type)}; the ONNX exporter handles gpt2`);
    const layers = num(config, "n_layer");
    const heads = num(config, "n_head");
    const d = num(config, "n_embd");
    const positions = num(config, "n_positions", 1024);
    const eps = num(config, "layer_norm_epsilon", 1e-5);
    const act = typeof config.activation_function === "string" ? config.activation_function : "gelu_new";
    if (!["gelu_new", "gelu_pytorch_tanh", "gelu"].includes(act))
      throw new LowrankError("CHECKPOINT_INVALID", `${dir}: activation ${act} is not supported by the ONNX exporter`);
    const dh = d / heads;
    const prefix = checkpoint.has("transformer.wte.weight") ? "transformer." : "";
    const scope = prefix ? "/transformer" : "";
    const g = new GraphBuilder();
    const weight = async (name: string) => {
      const info = checkpoint.tensorInfo().get(name);
      if (!info) throw new LowrankError("CHECKPOINT_INVALID", `${dir}: missing tensor "${name}"`);
      return g.floatInit(name, await checkpoint.readFloat32(name), info.shape);
    };
    const wte = await weight(`${prefix}wte.weight`);
    const wpe = await weight(`${prefix}wpe.weight`);
    // Constants.
    const zero = g.ints("lowrank::zero", [0]);
    const one = g.ints("lowrank::one", [1]);
    const split = g.ints("lowrank::split_qkv", [d, d, d]);
    const headShape = g.ints("lowrank::head_shape", [0, 0, heads, dh]);
    const mergedShape = g.ints("lowrank::merged_shape", [0, 0, d]);
    const scale = g.scalar("lowrank::attn_scale", 1 / Math.sqrt(dh));
    const maskValues = new Float32Array(positions * positions);
    for (let i = 0; i < positions; i++) for (let j = i + 1; j < positions; j++) maskValues[i * positions + j] = -3.4028234663852886e38;
    const causal = g.floatInit("lowrank::causal_mask", maskValues, [positions, positions]);
    const half = g.scalar("lowrank::half", 0.5);
    const oneF = g.scalar("lowrank::one_f", 1);
    // Only the constants the chosen gelu uses (ONNX Runtime warns about unused initializers).
    const exact = act === "gelu";
    const invSqrt2 = exact ? g.scalar("lowrank::inv_sqrt_2", Math.SQRT1_2) : "";
    const three = exact ? "" : g.scalar("lowrank::three", 3);
    const geluC = exact ? "" : g.scalar("lowrank::gelu_c", 0.044715);
    const sqrt2pi = exact ? "" : g.scalar("lowrank::sqrt_2_over_pi", Math.sqrt(2 / Math.PI));

    const ids = "input_ids";
    let h = g.one(`${scope}/wte`, "Gather", [wte, ids]);
    const shape = g.one(scope, "Shape", [ids]);
    const seq = g.one(scope, "Gather", [shape, one], { axis: 0 });
    const seqScalar = g.one(scope, "Squeeze", [seq, zero]);
    const zeroScalar = g.one(scope, "Squeeze", [zero, zero]);
    const oneScalar = g.one(scope, "Squeeze", [one, zero]);
    const range = g.one(scope, "Range", [zeroScalar, seqScalar, oneScalar]);
    h = g.one(scope, "Add", [h, g.one(`${scope}/wpe`, "Gather", [wpe, range])]);
    const seqEnds = g.one(scope, "Concat", [seq, seq], { axis: 0 });
    const mask = g.one(scope, "Slice", [causal, g.one(scope, "Concat", [zero, zero], { axis: 0 }), seqEnds]);

    const scopeOf = moduleScope;
    const conv1d = async (module: string, x: string) => {
      const s = scopeOf(module);
      return g.one(s, "Add", [g.one(s, "MatMul", [x, await weight(`${module}.weight`)]), await weight(`${module}.bias`)]);
    };
    const gelu = (s: string, x: string) => {
      if (act === "gelu") return g.one(s, "Mul", [g.one(s, "Mul", [x, half]), g.one(s, "Add", [g.one(s, "Erf", [g.one(s, "Mul", [x, invSqrt2])]), oneF])]);
      const inner = g.one(s, "Mul", [g.one(s, "Add", [x, g.one(s, "Mul", [g.one(s, "Pow", [x, three]), geluC])]), sqrt2pi]);
      return g.one(s, "Mul", [g.one(s, "Mul", [x, half]), g.one(s, "Add", [g.one(s, "Tanh", [inner]), oneF])]);
    };
    const norm = async (module: string, x: string) =>
      g.one(scopeOf(module), "LayerNormalization", [x, await weight(`${module}.weight`), await weight(`${module}.bias`)], { axis: -1, epsilon: eps });

    for (let i = 0; i < layers; i++) {
      const block = `${prefix}h.${i}`;
      const attnScope = scopeOf(`${block}.attn`);
      const a = await norm(`${block}.ln_1`, h);
      const qkv = await conv1d(`${block}.attn.c_attn`, a);
      const [q, k, v] = g
        .op(attnScope, "Split", [qkv, split], { axis: 2 }, 3)
        .map((t) => g.one(attnScope, "Transpose", [g.one(attnScope, "Reshape", [t, headShape])], { perm: [0, 2, 1, 3] }));
      const kT = g.one(attnScope, "Transpose", [k!], { perm: [0, 1, 3, 2] });
      const scores = g.one(attnScope, "Add", [g.one(attnScope, "Mul", [g.one(attnScope, "MatMul", [q!, kT]), scale]), mask]);
      const attended = g.one(attnScope, "MatMul", [g.one(attnScope, "Softmax", [scores], { axis: -1 }), v!]);
      const merged = g.one(attnScope, "Reshape", [g.one(attnScope, "Transpose", [attended], { perm: [0, 2, 1, 3] }), mergedShape]);
      h = g.one(scopeOf(block), "Add", [h, await conv1d(`${block}.attn.c_proj`, merged)]);
      const m = await norm(`${block}.ln_2`, h);
      const inner = gelu(scopeOf(`${block}.mlp.act`), await conv1d(`${block}.mlp.c_fc`, m));
      h = g.one(scopeOf(block), "Add", [h, await conv1d(`${block}.mlp.c_proj`, inner)]);
    }
    const last = await norm(`${prefix}ln_f`, h);
    const head = checkpoint.has("lm_head.weight") ? await weight("lm_head.weight") : wte;
    g.one("/lm_head", "MatMul", [last, g.one("/lm_head", "Transpose", [head], { perm: [1, 0] })]);
    g.nodes[g.nodes.length - 1]!.output[0] = "logits";
    const graph = {
      name: "lowrank_gpt2",
      node: g.nodes,
      initializer: g.initializers,
      input: [floatValueInfo("input_ids", ["batch", "sequence"], ONNX_INT64)],
      output: [floatValueInfo("logits", ["batch", "sequence", num(config, "vocab_size")])],
      value_info: [],
    };
    return ModelProtoType.fromObject({ ir_version: 8, producer_name: "lowrank", opset_import: [{ domain: "", version: 17 }], graph }) as unknown as ModelProto;
  } finally {
    await checkpoint.close();
  }
}
