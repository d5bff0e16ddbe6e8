import type { ModelDescription, ModuleInfo, ModuleKind, TensorInfo } from "./model-description.js";

/** Model types whose projections are transformers' Conv1D (weights stored input by output). */
const CONV1D_MODEL_TYPES = new Set(["gpt2", "openai-gpt", "decision_transformer", "gpt_bigcode_conv1d"]);
const CONV1D_NAMES = new Set(["c_attn", "c_proj", "c_fc", "q_attn"]);

/** Leaf names that transformers uses for nn.Embedding modules. */
const EMBEDDING_NAMES = new Set([
  "wte",
  "wpe",
  "embed_tokens",
  "word_embeddings",
  "position_embeddings",
  "token_type_embeddings",
  "rel_embeddings",
  "embed_positions",
  "shared",
  "embed_in",
  "relative_attention_bias",
  "tok_embeddings",
  "embed_tokens_per_layer",
  "wordpe",
  "embedding",
]);

/** Input-embedding leaf names, in the order a tied output head looks for them. */
const INPUT_EMBEDDING_NAMES = ["wte", "embed_tokens", "word_embeddings", "embed_in", "tok_embeddings", "shared"];

const LAYER_INDEX = /\.(\d+)(?:\.|$)/;

function leafName(name: string): string {
  const i = name.lastIndexOf(".");
  return i < 0 ? name : name.slice(i + 1);
}

function isNormName(leaf: string): boolean {
  return /norm|^ln|_ln$|^ln_|layernorm/i.test(leaf);
}

function classifyWeight(modelType: string | undefined, moduleName: string, shape: number[]): ModuleKind {
  const leaf = leafName(moduleName);
  if (shape.length === 1) return isNormName(leaf) ? "norm" : "other";
  if (shape.length === 4) return "conv2d";
  if (shape.length !== 2) return "other";
  if (modelType !== undefined && CONV1D_MODEL_TYPES.has(modelType) && CONV1D_NAMES.has(leaf)) return "conv1d";
  if (EMBEDDING_NAMES.has(leaf) || /embeddings?$/.test(leaf)) return "embedding";
  return "linear";
}

function isCausalOrMaskedLm(architectures: string[]): boolean {
  return architectures.some((a) => /LMHeadModel$|ForCausalLM$|ForConditionalGeneration$/.test(a));
}

/**
 * Builds the module tree of a Hugging Face checkpoint from its config.json and its tensor list
 * (names, dtypes, shapes — a safetensors header is enough). Adds the tied `lm_head` that causal-LM
 * checkpoints leave out of the file when tie_word_embeddings holds.
 *
 * @example
 * const description = describeModel(config, new Map([["lm_head.weight", { dtype: "F32", shape: [512, 64] }]]));
 */
export function describeModel(config: Record<string, unknown>, tensors: ReadonlyMap<string, TensorInfo>): ModelDescription {
  const modelType = typeof config.model_type === "string" ? config.model_type : undefined;
  const architectures = Array.isArray(config.architectures) ? config.architectures.filter((a): a is string => typeof a === "string") : [];
  const leaves = new Map<string, ModuleInfo>();
  const order: string[] = [];

  for (const [key, info] of tensors) {
    const dot = key.lastIndexOf(".");
    if (dot < 0) continue;
    const moduleName = key.slice(0, dot);
    const param = key.slice(dot + 1);
    let module = leaves.get(moduleName);
    if (!module) {
      module = { name: moduleName, kind: "other" };
      const layer = LAYER_INDEX.exec(`.${moduleName}`);
      if (layer) module.layerIndex = Number(layer[1]);
      leaves.set(moduleName, module);
      order.push(moduleName);
    }
    if (param === "weight") {
      module.kind = classifyWeight(modelType, moduleName, info.shape);
      module.weightKey = key;
      if (module.kind === "linear") {
        module.layout = "out_in";
        [module.outFeatures, module.inFeatures] = info.shape;
      } else if (module.kind === "conv1d") {
        module.layout = "in_out";
        [module.inFeatures, module.outFeatures] = info.shape;
      } else if (module.kind === "embedding") {
        // Seen as a map from the vocabulary (in) to the hidden size (out), stored [in, out].
        module.layout = "in_out";
        [module.inFeatures, module.outFeatures] = info.shape;
      }
    } else if (param === "bias") {
      module.biasKey = key;
    }
  }

  let outputHead: string | undefined;
  if (leaves.has("lm_head")) {
    outputHead = "lm_head";
    leaves.get("lm_head")!.isOutputHead = true;
  } else if (isCausalOrMaskedLm(architectures) && config.tie_word_embeddings !== false) {
    const embedding = [...leaves.values()].find((m) => m.kind === "embedding" && INPUT_EMBEDDING_NAMES.includes(leafName(m.name)));
    if (embedding?.weightKey) {
      const [vocab, hidden] = tensors.get(embedding.weightKey)!.shape;
      leaves.set("lm_head", {
        name: "lm_head",
        kind: "linear",
        layout: "out_in",
        inFeatures: hidden,
        outFeatures: vocab,
        weightKey: embedding.weightKey,
        tiedTo: embedding.name,
        isOutputHead: true,
      });
      order.push("lm_head");
      outputHead = "lm_head";
    }
  }

  // named_modules() order: each container right before its first child.
  const modules: ModuleInfo[] = [];
  const seen = new Set<string>();
  for (const name of order) {
    const parts = name.split(".");
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join(".");
      if (seen.has(parent)) continue;
      seen.add(parent);
      if (leaves.has(parent)) continue;
      const layer = LAYER_INDEX.exec(`.${parent}`);
      modules.push({ name: parent, kind: "container", ...(layer ? { layerIndex: Number(layer[1]) } : {}) });
    }
    if (!seen.has(name)) {
      seen.add(name);
      modules.push(leaves.get(name)!);
    }
  }
  return {
    modelType,
    architectures,
    modules,
    byName: new Map(modules.map((m) => [m.name, m])),
    tensors,
    outputHead,
    config,
  };
}
