#!/usr/bin/env node
// `pnpm demo`: the main job, offline. The embedded pretrained GPT-2 (models/gpt2-mini) is adapted with
// LoRA (r=4 on the attention projection) to the E2E NLG task — the LoRA paper's GPT-2 task — and
// measured before and after: eval loss, perplexity and BLEU on held-out meaning representations.
// Training, evaluation and generation run on ONNX Runtime (the adapter fed at run time). The PEFT adapter is
// saved, merged, exported to ONNX and run on ONNX Runtime to show the outputs agree. Everything goes to demo-output/ (or --out): adapter/, merged/, merged.onnx, metrics.json,
// report.md and loss-curve.svg.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import cliProgress from "cli-progress";
import * as tf from "@tensorflow/tfjs";
import { loadTokenizer, mergeCheckpoint, writeAdapter } from "@lowrank/core";
import { attachAdapter, loadModel, selectEngine } from "@lowrank/backend-tfjs";
import { inferenceContext } from "@lowrank/backend-tfjs/internal";
import { buildDecoderGraph, encodeModel, OnnxBackend } from "@lowrank/backend-onnx";
import { createOnnxLoraTraining, OnnxLoraTrainer } from "@lowrank/backend-onnx/internal";
import { trainerOptionsFor } from "@lowrank/core/internal";
import { corpusBleu, e2eExample as example, e2ePrompt as prompt, generateGreedy, lineChartSvg, loadE2e, splitE2e } from "@lowrank/bench";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const flag = (name, fallback) => (args.includes(name) ? args[args.indexOf(name) + 1] : fallback);
const out = path.resolve(flag("--out", path.join(root, "demo-output")));
const steps = Number(flag("--steps", "200"));
const evalMrs = Number(flag("--eval-mrs", "40"));
const modelDir = path.resolve(flag("--model", path.join(root, "models", "gpt2-mini")));
const started = performance.now();
const say = (text) => process.stdout.write(`${text}\n`);
const bar = (label, total) => {
  const b = new cliProgress.SingleBar(
    { format: `${label.padEnd(22)} |{bar}| {value}/{total} {extra}`, hideCursor: true, noTTYOutput: true, notTTYSchedule: 10_000 },
    cliProgress.Presets.shades_classic,
  );
  b.start(total, 0, { extra: "" });
  return b;
};

mkdirSync(out, { recursive: true });
say(`lowrank demo — LoRA on E2E with the embedded GPT-2 (${modelDir}) on ONNX Runtime`);
const tokenizer = await loadTokenizer(modelDir, JSON.parse(readFileSync(path.join(modelDir, "config.json"), "utf8")));
const eos = tokenizer.eosTokenId;
const { train, held } = splitE2e(loadE2e(path.join(root, "data", "e2e", "valid.txt")));
const encode = (text) => [...tokenizer.encode(text), eos].slice(0, 128);
const trainExamples = train.flatMap((g) => g.refs.map((r) => ({ ids: encode(example(g.mr, r)) })));
const heldOut = held.slice(0, evalMrs);
const evalExamples = heldOut.flatMap((g) => g.refs.slice(0, 3).map((r) => ({ ids: encode(example(g.mr, r)) })));
say(`E2E: ${trainExamples.length} training examples (${train.length} MRs), ${evalExamples.length} held-out examples (${heldOut.length} unseen MRs)`);

// Training runs on ONNX Runtime: one loss-and-gradients graph built from the checkpoint.
const lora = { r: 4, lora_alpha: 32, target_modules: ["c_attn"], lora_dropout: 0.1, base_model_name_or_path: "models/gpt2-mini" };
const training = await createOnnxLoraTraining({ model: modelDir, lora, seed: 7 });
const trainer = new OnnxLoraTrainer(
  training.session,
  training.slots,
  training.params,
  trainExamples,
  trainerOptionsFor(
    { model: modelDir, data: "", out, steps, learningRate: 4e-3, batchSize: 16, warmupSteps: 8, schedule: "linear", weightDecay: 0.01, maxGradNorm: 1 },
    { task: "causal-lm", seed: 7, padTokenId: eos },
  ),
  { dropout: training.config.lora_dropout },
);

// Generation runs on ONNX Runtime: the base's graph built from its checkpoint, with a key/value
// cache, the adapter (once trained) fed at run time; prompts in batches of 8, greedy.
async function generations(adapter) {
  const b = bar("generating (BLEU)", heldOut.length);
  const prompts = heldOut.map((g) => tokenizer.encode(prompt(g.mr)));
  const rows = await generateGreedy(modelDir, prompts, { adapter, maxNewTokens: 48, eosTokenId: eos, onBatch: (done) => b.update(done) });
  b.stop();
  return rows.map((ids) => tokenizer.decode(ids.filter((id) => id !== eos)).trim());
}

async function measure(label, adapter) {
  const b = bar(`evaluating (${label})`, 1);
  const result = await trainer.evaluate(evalExamples, 16);
  b.increment();
  b.stop();
  const texts = await generations(adapter);
  const bleu = corpusBleu(
    texts,
    heldOut.map((g) => g.refs),
  );
  return { eval_loss: result.loss, perplexity: result.perplexity, bleu, texts };
}

const before = await measure("before");
const progress = bar("training LoRA", steps);
const losses = [];
for (let i = 0; i < steps; i++) {
  const log = await trainer.trainStep();
  losses.push(log.loss);
  progress.update(log.step, { extra: `loss ${log.loss.toFixed(3)}  ${Math.round(log.tokensPerSecond)} tok/s` });
}
progress.stop();
const after = await measure("after", training.adapter());
await training.release();

const adapterDir = path.join(out, "adapter");
const trainingSummary = { steps, losses, base_model: "models/gpt2-mini", eval_loss: after.eval_loss, eval_perplexity: after.perplexity };
await writeAdapter(adapterDir, training.adapter(), {
  "training_summary.json": `${JSON.stringify(trainingSummary, null, 2)}\n`,
});
const mergedDir = path.join(out, "merged");
await mergeCheckpoint({ baseDir: modelDir, adapter: training.adapter(), outDir: mergedDir });

// The merged checkpoint on ONNX Runtime against the adapter unmerged on TensorFlow.js, the second backend.
const engine = await selectEngine();
const model = await loadModel(modelDir);
attachAdapter(model, training.adapter());
const sample = heldOut.slice(0, 4).map((g) => tokenizer.encode(prompt(g.mr)).slice(0, 24));
const width = Math.min(...sample.map((s) => s.length));
const ids = sample.map((s) => s.slice(0, width));
writeFileSync(path.join(out, "merged.onnx"), encodeModel(await buildDecoderGraph(mergedDir)));
const ortLogits = (await new OnnxBackend().predict({ model: path.join(out, "merged.onnx"), inputIds: ids })).logits.data;
const tfjsLogits = tf.tidy(() => model.forward({ inputIds: tf.tensor2d(ids, undefined, "int32") }, inferenceContext()).logits.dataSync());
let agreement = 0;
for (let i = 0; i < tfjsLogits.length; i++) agreement = Math.max(agreement, Math.abs(tfjsLogits[i] - ortLogits[i]));

const totalParams = training.totalParameters;
const metrics = {
  before: { eval_loss: before.eval_loss, perplexity: before.perplexity, bleu: before.bleu },
  after: { eval_loss: after.eval_loss, perplexity: after.perplexity, bleu: after.bleu },
  trainable_params: training.trainableParameters,
  total_params: totalParams,
  steps,
  onnx_max_abs_diff: agreement,
  seconds: (performance.now() - started) / 1000,
};
writeFileSync(path.join(out, "metrics.json"), `${JSON.stringify(metrics, null, 2)}\n`);
writeFileSync(
  path.join(out, "loss-curve.svg"),
  lineChartSvg({
    title: "LoRA training loss on E2E",
    xLabel: "step",
    yLabel: "loss",
    series: [{ name: "training loss", points: losses.map((l, i) => [i + 1, l]) }],
  }),
);
const cell = (text) => text.replace(/\|/g, "\\|");
const samples = heldOut.slice(0, 6).map((g, i) => `| ${cell(g.mr)} | ${cell(before.texts[i])} | ${cell(after.texts[i])} | ${cell(g.refs[0])} |`);
writeFileSync(
  path.join(out, "report.md"),
  [
    "# lowrank demo: LoRA on E2E",
    "",
    `Base: the embedded GPT-2 (\`models/gpt2-mini\`, ${totalParams.toLocaleString("en-US")} parameters, pretrained on DART). LoRA r=4, alpha 32 on ` +
      `\`c_attn\`: ${training.trainableParameters.toLocaleString("en-US")} trainable parameters ` +
      `(${((100 * training.trainableParameters) / totalParams).toFixed(2)}%), ${steps} steps on ${trainExamples.length} E2E examples. Held out: ` +
      `${heldOut.length} unseen meaning representations.`,
    "",
    "| | eval loss | perplexity | BLEU |",
    "|---|---|---|---|",
    `| before | ${before.eval_loss.toFixed(3)} | ${before.perplexity.toFixed(2)} | ${(100 * before.bleu).toFixed(2)} |`,
    `| after LoRA | ${after.eval_loss.toFixed(3)} | ${after.perplexity.toFixed(2)} | ${(100 * after.bleu).toFixed(2)} |`,
    "",
    "![training loss](loss-curve.svg)",
    "",
    `Trained and evaluated on ONNX Runtime. The merged model, exported to ONNX and run on ONNX Runtime, agrees with the adapter run unmerged on ` +
      `TensorFlow.js ${engine.engine} within ${agreement.toExponential(1)} (max abs logit difference).`,
    "",
    "## Sample generations (greedy)",
    "",
    "| meaning representation | before | after LoRA | a reference |",
    "|---|---|---|---|",
    ...samples,
    "",
  ].join("\n"),
);

say("");
say("               eval loss   perplexity   BLEU");
say(`before         ${before.eval_loss.toFixed(3).padEnd(11)} ${before.perplexity.toFixed(2).padEnd(12)} ${(100 * before.bleu).toFixed(2)}`);
say(`after LoRA     ${after.eval_loss.toFixed(3).padEnd(11)} ${after.perplexity.toFixed(2).padEnd(12)} ${(100 * after.bleu).toFixed(2)}`);
say(
  `trainable parameters: ${training.trainableParameters.toLocaleString("en-US")} of ${totalParams.toLocaleString("en-US")} ` +
    `(${((100 * training.trainableParameters) / totalParams).toFixed(2)}%)`,
);
say(`merged model on ONNX Runtime vs adapted model on TensorFlow.js: max |Δlogit| = ${agreement.toExponential(1)}`);
say(`wrote ${out}/{adapter/, merged/, merged.onnx, metrics.json, report.md, loss-curve.svg} in ${metrics.seconds.toFixed(0)} s`);
