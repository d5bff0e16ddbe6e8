import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { readAdapter, readSafetensors, toFloat32 } from "@lowrank/core";
import { requireFixture } from "@lowrank/core/testing";
import { e2eByteData, lowrank, readTrainingLog, repoRoot } from "./cli-helpers.js";

const tmp = mkdtempSync(path.join(os.tmpdir(), "lowrank-cli-train-onnx-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const e2eData = (name: string, from: number, count: number): string => e2eByteData(tmp, name, from, count);
const readLog = readTrainingLog;
/** `lowrank train` on the embedded GPT-2 (it has a tokenizer) and the example E2E text data. */
const trainOnEmbeddedModel = [
  "train",
  "--model",
  path.join(repoRoot, "models", "gpt2-mini"),
  "--data",
  path.join(repoRoot, "examples", "data", "e2e-restaurants.jsonl"),
];

describe("lowrank train --backend onnx", () => {
  const data = e2eData("train.jsonl", 0, 48);
  const evalData = e2eData("eval.jsonl", 100, 16);
  const common = [
    "--model",
    requireFixture("gpt2-tiny"),
    "--data",
    data,
    "--rank",
    "4",
    "--alpha",
    "8",
    "--target-modules",
    "c_attn,c_proj",
    "--lr",
    "5e-3",
    "--batch-size",
    "8",
    "--seed",
    "3",
    "--steps",
    "12",
  ];

  test("trains on ONNX Runtime: the loss falls, the PEFT adapter loads with predict, and tfjs gets the same losses", async () => {
    const out = path.join(tmp, "run");
    const log = path.join(tmp, "run.jsonl");
    const run = lowrank([
      "train",
      ...common,
      "--backend",
      "onnx",
      "--out",
      out,
      "--log",
      log,
      "--eval-data",
      evalData,
      "--eval-every",
      "6",
      "--save-every",
      "5",
      "--json",
    ]);
    expect(run.status, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({
      steps: 12,
      trainable_parameters: 2 * (4 * 64 + 192 * 4 + 4 * 64 + 64 * 4 + 4 * 256 + 64 * 4),
      total_parameters: 136960,
    });
    const entries = readLog(log);
    const steps = entries.filter((e) => e.loss !== undefined);
    expect(steps.map((e) => e.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(steps.every((e) => e.seconds! > 0)).toBe(true);
    expect(steps.at(-1)!.loss!).toBeLessThan(steps[0]!.loss!);
    const evals = entries.filter((e) => e.eval_loss !== undefined);
    expect(evals).toHaveLength(2);
    expect(evals[1]!.eval_loss!).toBeLessThan(evals[0]!.eval_loss! + 1e-3);
    expect(
      readdirSync(out)
        .filter((f) => f.startsWith("checkpoint-"))
        .sort(),
    ).toEqual(["checkpoint-10", "checkpoint-5"]);
    expect(JSON.parse(readFileSync(path.join(out, "training_summary.json"), "utf8"))).toMatchObject({ backend: "onnx", device: "cpu", steps: 12 });

    const adapter = await readAdapter(out);
    expect(adapter.config).toMatchObject({ peft_type: "LORA", r: 4, lora_alpha: 8, fan_in_fan_out: true, task_type: "CAUSAL_LM", inference_mode: true });
    expect(adapter.tensors.get("base_model.model.transformer.h.1.mlp.c_proj.lora_A.weight")!.shape).toEqual([4, 256]);

    // The adapter loads with predict (tfjs, the default backend) and changes the model's output.
    const ids = path.join(tmp, "ids.json");
    writeFileSync(ids, "[[72, 101, 108, 108, 111, 32, 119, 111]]");
    const adapted = lowrank([
      "predict",
      "--model",
      requireFixture("gpt2-tiny"),
      "--adapter",
      out,
      "--input-ids",
      ids,
      "--output",
      path.join(tmp, "adapted.safetensors"),
    ]);
    expect(adapted.status, adapted.stderr).toBe(0);
    expect(lowrank(["predict", "--model", requireFixture("gpt2-tiny"), "--input-ids", ids, "--output", path.join(tmp, "base.safetensors")]).status).toBe(0);
    const logits = async (file: string) => toFloat32((await readSafetensors(path.join(tmp, file))).tensors.get("logits")!);
    const [a, b] = [await logits("adapted.safetensors"), await logits("base.safetensors")];
    expect(a.length).toBe(8 * 512);
    expect(a.some((v, i) => Math.abs(v - b[i]!) > 1e-3)).toBe(true);

    // The same run on the tfjs backend: the same losses (lora_dropout 0, same seed and batch order).
    const tfjsLog = path.join(tmp, "tfjs.jsonl");
    expect(lowrank(["train", ...common, "--out", path.join(tmp, "tfjs"), "--log", tfjsLog]).status).toBe(0);
    const theirs = readLog(tfjsLog).filter((e) => e.loss !== undefined);
    steps.forEach((e, i) => expect(Math.abs(e.loss! - theirs[i]!.loss!)).toBeLessThanOrEqual(1e-3));
  });

  test("resuming an ONNX checkpoint continues with the uninterrupted run's losses", () => {
    const straightLog = path.join(tmp, "straight.jsonl");
    expect(lowrank(["train", ...common, "--backend", "onnx", "--out", path.join(tmp, "straight"), "--log", straightLog]).status).toBe(0);
    const first = path.join(tmp, "first");
    expect(lowrank(["train", ...common, "--backend", "onnx", "--out", first, "--save-every", "5"]).status).toBe(0);
    const resumedLog = path.join(tmp, "resumed.jsonl");
    const resumed = lowrank([
      "train",
      ...common,
      "--backend",
      "onnx",
      "--out",
      path.join(tmp, "resumed"),
      "--resume",
      path.join(first, "checkpoint-5"),
      "--log",
      resumedLog,
    ]);
    expect(resumed.status, resumed.stderr).toBe(0);
    const straight = readLog(straightLog).filter((e) => e.loss !== undefined);
    const next = readLog(resumedLog).filter((e) => e.loss !== undefined);
    expect(next.map((e) => e.step)).toEqual([6, 7, 8, 9, 10, 11, 12]);
    next.forEach((e) => expect(e.loss!).toBeCloseTo(straight[e.step! - 1]!.loss!, 6));
  });

  test("the LLaMA family trains too (RMSNorm, RoPE, grouped-query attention), with tfjs's losses", () => {
    const args = [
      "train",
      "--model",
      requireFixture("llama-tiny"),
      "--data",
      data,
      "--rank",
      "4",
      "--alpha",
      "8",
      "--target-modules",
      "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj",
      "--lr",
      "5e-3",
      "--batch-size",
      "8",
      "--seed",
      "3",
      "--steps",
      "6",
    ];
    const onnxLog = path.join(tmp, "llama-onnx.jsonl");
    const tfjsLog = path.join(tmp, "llama-tfjs.jsonl");
    const run = lowrank([...args, "--backend", "onnx", "--out", path.join(tmp, "llama-onnx"), "--log", onnxLog]);
    expect(run.status, run.stderr).toBe(0);
    expect(lowrank([...args, "--out", path.join(tmp, "llama-tfjs"), "--log", tfjsLog]).status).toBe(0);
    const [ours, theirs] = [readLog(onnxLog), readLog(tfjsLog)];
    expect(ours.map((e) => e.step)).toEqual([1, 2, 3, 4, 5, 6]);
    ours.forEach((e, i) => expect(Math.abs(e.loss! - theirs[i]!.loss!)).toBeLessThanOrEqual(1e-3));
  });

  test("text data goes through the model folder's tokenizer (core's), with tfjs's losses", () => {
    const args = [...trainOnEmbeddedModel, "--rank", "4", "--target-modules", "c_attn", "--batch-size", "4", "--seq-len", "48", "--seed", "5", "--steps", "4"];
    const [onnxLog, tfjsLog] = [path.join(tmp, "text-onnx.jsonl"), path.join(tmp, "text-tfjs.jsonl")];
    const run = lowrank([...args, "--backend", "onnx", "--out", path.join(tmp, "text-onnx"), "--log", onnxLog]);
    expect(run.status, run.stderr).toBe(0);
    expect(lowrank([...args, "--backend", "tfjs", "--out", path.join(tmp, "text-tfjs"), "--log", tfjsLog]).status).toBe(0);
    const [ours, theirs] = [readLog(onnxLog), readLog(tfjsLog)].map((log) => log.filter((e) => e.loss !== undefined));
    expect(ours!.map((e) => e.step)).toEqual([1, 2, 3, 4]);
    ours!.forEach((e, i) => expect(Math.abs(e.loss! - theirs![i]!.loss!)).toBeLessThanOrEqual(1e-3));
  });

  test("--full trains every parameter on ONNX Runtime by default, with tfjs's losses, and writes a checkpoint that predicts", () => {
    const args = [
      "train",
      "--model",
      requireFixture("gpt2-tiny"),
      "--data",
      data,
      "--full",
      "--lr",
      "1e-3",
      "--batch-size",
      "4",
      "--seed",
      "2",
      "--steps",
      "5",
    ];
    const [onnxLog, tfjsLog] = [path.join(tmp, "full-onnx.jsonl"), path.join(tmp, "full-tfjs.jsonl")];
    const onnxOut = path.join(tmp, "full-onnx");
    const run = lowrank([...args, "--out", onnxOut, "--log", onnxLog, "--json"]);
    expect(run.status, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout).backend).toBe("onnx");
    expect(lowrank([...args, "--backend", "tfjs", "--out", path.join(tmp, "full-tfjs"), "--log", tfjsLog]).status).toBe(0);
    const [ours, theirs] = [readLog(onnxLog), readLog(tfjsLog)].map((log) => log.filter((e) => e.loss !== undefined));
    expect(ours!.map((e) => e.step)).toEqual([1, 2, 3, 4, 5]);
    ours!.forEach((e, i) => expect(Math.abs(e.loss! - theirs![i]!.loss!)).toBeLessThanOrEqual(1e-3));
    const ids = path.join(tmp, "full-ids.json");
    writeFileSync(ids, "[[1, 2, 3, 4]]");
    const predicted = lowrank(["predict", "--model", onnxOut, "--input-ids", ids, "--out", path.join(tmp, "full-logits.safetensors")]);
    expect(predicted.status, predicted.stderr).toBe(0);
  });

  test("--gradient-checkpointing recomputes activations with the same losses; tfjs says it holds them", () => {
    const runs = [[], ["--gradient-checkpointing"]].map((flag, i) => {
      const log = path.join(tmp, `checkpointing-${i}.jsonl`);
      const run = lowrank(["train", ...common, ...flag, "--steps", "4", "--dropout", "0.1", "--out", path.join(tmp, `checkpointing-${i}`), "--log", log]);
      expect(run.status, run.stderr).toBe(0);
      return readLog(log).filter((e) => e.loss !== undefined);
    });
    expect(runs[1]!.map((e) => e.step)).toEqual([1, 2, 3, 4]);
    runs[1]!.forEach((e, i) => expect(Math.abs(e.loss! - runs[0]![i]!.loss!)).toBeLessThanOrEqual(1e-5));
    const tfjs = lowrank(["train", ...common, "--steps", "1", "--backend", "tfjs", "--gradient-checkpointing", "--out", path.join(tmp, "checkpointing-tfjs")]);
    expect(tfjs.status, tfjs.stderr).toBe(0);
    expect(tfjs.stderr).toContain("gradient checkpointing: the tfjs backend holds every activation");
  });

  test("--packing packs short examples (attention within each) on both backends, with the same losses", () => {
    // 24 evaluation examples: enough to compare, few enough for tfjs on the embedded base.
    const evalData = path.join(tmp, "packing-eval.jsonl");
    const evalLines = readFileSync(path.join(repoRoot, "examples", "data", "e2e-restaurants-more.jsonl"), "utf8")
      .split("\n")
      .slice(0, 24);
    writeFileSync(evalData, `${evalLines.join("\n")}\n`);
    const args = [...trainOnEmbeddedModel, "--packing", "--eval-data", evalData, "--seq-len", "96", "--batch-size", "2", "--seed", "4", "--steps", "3"];
    const [onnxLog, tfjsLog] = [path.join(tmp, "packed-onnx.jsonl"), path.join(tmp, "packed-tfjs.jsonl")];
    const run = lowrank([...args, "--out", path.join(tmp, "packed-onnx"), "--log", onnxLog, "--json"]);
    expect(run.status, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout).backend).toBe("onnx");
    expect(lowrank([...args, "--backend", "tfjs", "--out", path.join(tmp, "packed-tfjs"), "--log", tfjsLog]).status).toBe(0);
    const [ours, theirs] = [readLog(onnxLog), readLog(tfjsLog)].map((log) => log.filter((e) => e.loss !== undefined));
    expect(ours!.map((e) => e.step)).toEqual([1, 2, 3]);
    // Packed rows are full: a batch of 2 holds far more tokens than 2 examples would.
    expect(ours![0]!.tokens).toBeGreaterThan(120);
    ours!.forEach((e, i) => expect(Math.abs(e.loss! - theirs![i]!.loss!)).toBeLessThanOrEqual(1e-3));
    // The evaluation data is read unpacked, and the packed graph evaluates it too.
    const [ourEval, theirEval] = [readLog(onnxLog), readLog(tfjsLog)].map((log) => log.filter((e) => e.eval_loss !== undefined));
    expect(ourEval!.length).toBeGreaterThan(0);
    expect(Math.abs(ourEval!.at(-1)!.eval_loss! - theirEval!.at(-1)!.eval_loss!)).toBeLessThanOrEqual(1e-3);
  }, 180_000);

  test("what the ONNX trainer does not do is a one-line usage error that writes nothing", () => {
    const text = path.join(tmp, "text.txt");
    writeFileSync(text, "hello there\n");
    const out = path.join(tmp, "never");
    for (const [args, message] of [
      [
        ["--model", requireFixture("gpt2-tiny"), "--data", data, "--task", "seq-cls"],
        /the onnx trainer does not support --task seq-cls on model_type "gpt2" yet \(only on bert, roberta, xlm-roberta, deberta-v2\); use --backend tfjs/,
      ],
      [["--model", requireFixture("gpt2-tiny"), "--data", data, "--init", "loftq"], /does not support `init_lora_weights` "loftq" yet/],
      [
        ["--model", requireFixture("gpt2-tiny"), "--data", text],
        /text\.txt line 1: has text but the model folder has no tokenizer\.json; give `input_ids` instead/,
      ],
    ] as const) {
      const run = lowrank(["train", "--backend", "onnx", "--out", out, ...args]);
      expect(run.status, run.stderr).toBe(2);
      expect(run.stderr).toMatch(/^(lowrank: warning: [^\n]*\n)*lowrank: error: [^\n]+\n$/);
      expect(run.stderr).toMatch(message);
      expect(existsSync(out)).toBe(false);
    }
  });
});

describe("lowrank train --task seq-cls on an encoder", () => {
  test("runs on ONNX Runtime by default; predict with its adapter gives the tfjs backend's logits", async () => {
    // roberta-tiny has no tokenizer: ids (bos, 2–9 ids, eos) with a label, the first id's residue mod 3.
    const lines = Array.from({ length: 24 }, (_, i) => {
      const inner = Array.from({ length: 2 + (i % 8) }, (_, t) => 3 + ((i * 37 + t * 101) % 509));
      return JSON.stringify({ input_ids: [0, ...inner, 2], label: inner[0]! % 3 });
    });
    const data = path.join(tmp, "classes.jsonl");
    writeFileSync(data, `${lines.join("\n")}\n`);
    const out = path.join(tmp, "seq-cls");
    const args = ["--model", requireFixture("roberta-tiny"), "--data", data, "--rank", "4", "--target-modules", "query,value", "--lr", "1e-2"];
    const run = lowrank(["train", ...args, "--task", "seq-cls", "--batch-size", "4", "--steps", "8", "--seed", "2", "--out", out, "--json"]);
    expect(run.status, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ backend: "onnx", steps: 8 });
    const adapter = await readAdapter(out);
    expect(adapter.config).toMatchObject({ task_type: "SEQ_CLS", modules_to_save: ["classifier", "score"], r: 4 });
    expect(adapter.tensors.get("base_model.model.classifier.out_proj.weight")!.shape).toEqual([3, 64]);
    expect(adapter.tensors.get("base_model.model.roberta.encoder.layer.1.attention.self.value.lora_B.weight")!.shape).toEqual([64, 4]);

    const ids = path.join(tmp, "cls-ids.json");
    writeFileSync(ids, "[[0, 17, 250, 31, 2]]");
    const predict = ["predict", "--model", requireFixture("roberta-tiny"), "--adapter", out, "--input-ids", ids];
    const logits = async (backend: string) => {
      const file = path.join(tmp, `cls-${backend}.safetensors`);
      const predicted = lowrank([...predict, "--backend", backend, "--output", file]);
      expect(predicted.status, predicted.stderr).toBe(0);
      return toFloat32((await readSafetensors(file)).tensors.get("logits")!);
    };
    const [onnx, tfjs] = [await logits("onnx"), await logits("tfjs")];
    expect(onnx.length).toBe(3);
    let worst = 0;
    onnx.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - tfjs[i]!))));
    console.log(`roberta-tiny seq-cls adapter: predict logits on onnx and tfjs differ by ${worst.toExponential(2)} at most`);
    expect(worst).toBeLessThanOrEqual(1e-4);
  });
});
