import { createLoraConfig, type LoraConfig } from "../config/lora-config.js";
import { LowrankError } from "../errors/lowrank-error.js";
import { float32Tensor, toFloat32, type Tensor } from "../formats/safetensors/dtype.js";
import type { Logger } from "../logger.js";
import type { ModelDescription, ModuleInfo } from "../model/model-description.js";
import { adapterKey } from "../adapter/adapter-keys.js";
import type { LoraAdapter } from "../adapter/lora-adapter.js";

export interface ImportLoralibParams {
  /** loralib.lora_state_dict(model) tensors ("<module>.lora_A", "<module>.lora_B"; "module." prefixes allowed). */
  stateDict: ReadonlyMap<string, Tensor>;
  model: ModelDescription;
  /** loralib's r: the rank of one group. */
  rank: number;
  /** loralib's lora_alpha (scaling = alpha / r). */
  alpha: number;
  /** Modules the checkpoint adapts: the fused module ("c_attn") or, to split, one name per enable_lora entry ("q_proj,k_proj,v_proj"). */
  targetModules: string[];
  /** MergedLinear's enable_lora; omitted for plain loralib.Linear. */
  enableLora?: boolean[];
  /** loralib's fan_in_fan_out; checked against the base layer's layout. */
  fanInFanOut?: boolean;
  /** Written as base_model_name_or_path. */
  baseModelName?: string;
  logger?: Logger;
}

const shapeText = (s: readonly number[]): string => `[${s.join(", ")}]`;

/**
 * Turns a microsoft/LoRA (loralib) checkpoint, which stores no hyper-parameters, into a PEFT adapter
 * with the same effect. A MergedLinear over a fused projection (GPT-2's c_attn) becomes one PEFT LoRA
 * of rank k·r and alpha k·alpha (same scaling) with lora_A unchanged and a block-diagonal lora_B that
 * puts group j's update into the j-th enabled output block; over separate projections it is split
 * into one rank-r LoRA per enabled projection.
 * @throws LowrankError USAGE / SHAPE_MISMATCH / ADAPTER_INVALID naming the module.
 */
export function importLoralib(p: ImportLoralibParams): LoraAdapter {
  if (!Number.isInteger(p.rank) || p.rank <= 0) throw new LowrankError("USAGE", `--rank must be a positive integer, got ${p.rank}`);
  if (!Number.isFinite(p.alpha) || p.alpha <= 0) throw new LowrankError("USAGE", `--alpha must be a positive number, got ${p.alpha}`);
  const enable = p.enableLora ?? [true];
  const groups = enable.filter(Boolean).length;
  if (groups === 0) throw new LowrankError("USAGE", "--enable-lora has no enabled block");

  const byModule = new Map<string, { A?: Tensor; B?: Tensor }>();
  for (const [rawKey, tensor] of p.stateDict) {
    const key = rawKey.replace(/^(module\.)+/, "");
    const m = /^(.+)\.lora_(A|B)$/.exec(key);
    if (!m) {
      p.logger?.warn(`loralib checkpoint: ignoring "${rawKey}" (not a lora_A / lora_B tensor)`);
      continue;
    }
    const entry = byModule.get(m[1]!) ?? {};
    entry[m[2] as "A" | "B"] = tensor;
    byModule.set(m[1]!, entry);
  }
  if (byModule.size === 0) throw new LowrankError("ADAPTER_INVALID", "loralib checkpoint: holds no <module>.lora_A / lora_B tensors");

  const tensors = new Map<string, Tensor>();
  let fused = 0;
  let split = 0;
  let layoutIsConv1d: boolean | undefined;
  for (const [name, { A, B }] of byModule) {
    if (!A || !B) throw new LowrankError("ADAPTER_INVALID", `loralib checkpoint: module "${name}" has ${A ? "lora_A but no lora_B" : "lora_B but no lora_A"}`);
    const module = p.model.byName.get(name);
    const leaf = name.slice(name.lastIndexOf(".") + 1);
    const parent = name.slice(0, name.lastIndexOf("."));
    const splitTargets = module ? undefined : p.targetModules.map((t) => p.model.byName.get(`${parent}.${t}`));
    if (module && !p.targetModules.includes(leaf)) {
      throw new LowrankError("USAGE", `loralib checkpoint: module "${name}" is not among --target-modules ${p.targetModules.join(",")}`);
    }
    if (!module && (!splitTargets || splitTargets.length !== enable.length || splitTargets.some((t) => !t))) {
      throw new LowrankError(
        "ADAPTER_INVALID",
        `loralib checkpoint: module "${name}" is not in the base model, and --target-modules ${p.targetModules.join(",")} does not name one existing ` +
          `projection per --enable-lora entry beside it`,
      );
    }
    const outFeatures = module ? module.outFeatures! : splitTargets!.reduce((s, t) => s + t!.outFeatures!, 0);
    const inFeatures = module ? module.inFeatures! : splitTargets![0]!.inFeatures!;
    if (outFeatures % enable.length !== 0)
      throw new LowrankError(
        "SHAPE_MISMATCH",
        `loralib checkpoint: "${name}" has ${outFeatures} outputs, not divisible into ${enable.length} --enable-lora blocks`,
      );
    const m = outFeatures / enable.length;
    const r = p.rank;
    if (shapeText(A.shape) !== shapeText([groups * r, inFeatures])) {
      const looksMerged = A.shape.length === 2 && A.shape[1] === inFeatures && A.shape[0]! % r === 0 && A.shape[0]! / r !== groups;
      const hint = looksMerged ? ` (it looks like a MergedLinear with ${A.shape[0]! / r} enabled blocks: pass --enable-lora)` : "";
      throw new LowrankError(
        "SHAPE_MISMATCH",
        `loralib checkpoint: "${name}.lora_A" is ${shapeText(A.shape)}, expected [k·r, in] = [${groups * r}, ${inFeatures}] for --rank ${r} and ` +
          `${groups} enabled block(s)${hint}`,
      );
    }
    if (shapeText(B.shape) !== shapeText([groups * m, r])) {
      throw new LowrankError(
        "SHAPE_MISMATCH",
        `loralib checkpoint: "${name}.lora_B" is ${shapeText(B.shape)}, expected [k·m, r] = [${groups * m}, ${r}] for --rank ${r} and --enable-lora ` +
          `${enable.map(Number).join(",")}`,
      );
    }
    const a = toFloat32(A, `${name}.lora_A`);
    const b = toFloat32(B, `${name}.lora_B`);
    if (module?.kind === "embedding") {
      // loralib.Embedding: ΔW = (lora_B·lora_A)ᵀ·scaling, exactly PEFT's embedding LoRA.
      if (enable.length !== 1)
        throw new LowrankError("USAGE", `loralib checkpoint: "${name}" is an embedding; --enable-lora applies only to MergedLinear layers`);
      tensors.set(adapterKey(name, "lora_embedding_A"), float32Tensor(a, [r, inFeatures]));
      tensors.set(adapterKey(name, "lora_embedding_B"), float32Tensor(b, [outFeatures, r]));
      fused += 1;
    } else if (module) {
      checkKind(module, name);
      layoutIsConv1d = module.kind === "conv1d";
      const kr = groups * r;
      const blockB = new Float32Array(outFeatures * kr);
      let j = 0;
      enable.forEach((on, block) => {
        if (!on) return;
        for (let row = 0; row < m; row++) {
          for (let c = 0; c < r; c++) blockB[(block * m + row) * kr + j * r + c] = b[(j * m + row) * r + c]!;
        }
        j += 1;
      });
      tensors.set(adapterKey(name, "lora_A"), float32Tensor(a, [kr, inFeatures]));
      tensors.set(adapterKey(name, "lora_B"), float32Tensor(blockB, [outFeatures, kr]));
      fused += 1;
    } else {
      let j = 0;
      enable.forEach((on, block) => {
        if (!on) return;
        const target = splitTargets![block]!;
        checkKind(target, target.name);
        layoutIsConv1d = target.kind === "conv1d";
        if (target.outFeatures !== m)
          throw new LowrankError(
            "SHAPE_MISMATCH",
            `loralib checkpoint: "${target.name}" has ${target.outFeatures} outputs but each block of "${name}" has ${m}`,
          );
        tensors.set(adapterKey(target.name, "lora_A"), float32Tensor(a.slice(j * r * inFeatures, (j + 1) * r * inFeatures), [r, inFeatures]));
        tensors.set(adapterKey(target.name, "lora_B"), float32Tensor(b.slice(j * m * r, (j + 1) * m * r), [m, r]));
        j += 1;
      });
      split += 1;
    }
  }
  if (fused > 0 && split > 0) throw new LowrankError("ADAPTER_INVALID", "loralib checkpoint: mixes fused and separate projections; import them separately");
  if (p.fanInFanOut !== undefined && layoutIsConv1d !== undefined && p.fanInFanOut !== layoutIsConv1d) {
    // loralib's flag only says how its own base weight is stored; the base checkpoint decides here.
    p.logger?.warn(
      `--fan-in-fan-out is ${p.fanInFanOut} but the base layers are ${layoutIsConv1d ? "Conv1D (input by output)" : "Linear (output by input)"}; ` +
        `using the base's layout`,
    );
  }
  const factor = fused > 0 ? groups : 1;
  const config: LoraConfig = createLoraConfig({
    r: p.rank * factor,
    lora_alpha: p.alpha * factor,
    target_modules: fused > 0 ? [...p.targetModules] : p.targetModules.filter((_, i) => enable[i]),
    fan_in_fan_out: layoutIsConv1d ?? false,
    bias: "none",
    lora_dropout: 0,
    task_type: "CAUSAL_LM",
    base_model_name_or_path: p.baseModelName ?? null,
    inference_mode: true,
  });
  return { config, tensors };
}

function checkKind(module: ModuleInfo, name: string): void {
  if (module.kind !== "linear" && module.kind !== "conv1d") {
    throw new LowrankError("ADAPTER_INVALID", `loralib checkpoint: "${name}" is a ${module.kind} in the base model, not a linear layer`);
  }
}
