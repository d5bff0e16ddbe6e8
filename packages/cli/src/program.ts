import { Command, CommanderError, Option } from "commander";
import { LowrankError } from "@lowrank/core";
import type { DependencyContainer } from "tsyringe";
import { createContext, type GlobalOptions } from "./cli-context.js";
import { LOWRANK_VERSION } from "./version.js";
import { backendsCommand } from "./commands/backends.js";
import { importLoralibCommand } from "./commands/import-loralib.js";
import { inspectCommand } from "./commands/inspect.js";
import { mergeCommand } from "./commands/merge.js";
import { combineCommand } from "./commands/combine.js";
import { analyzeCommand } from "./commands/analyze.js";
import { predictCommand } from "./commands/predict.js";
import { trainCommand } from "./commands/train.js";
import { generateCommand } from "./commands/generate.js";
import { onnxExportCommand, onnxMergeCommand } from "./commands/onnx-merge.js";
import { hubServeCommand, pullCommand, pushCommand } from "./commands/hub-commands.js";
import { serveCommand } from "./commands/serve.js";
import { webCommand } from "./commands/web.js";
import { convertCommand } from "./commands/convert.js";
import { benchCommand } from "./commands/bench.js";
import { doctorCommand } from "./commands/doctor.js";
import { choiceFlag } from "./commands/parse-flags.js";

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

/**
 * Adds an option under its one name (`--model` for a base model, `--out` for an output) and keeps
 * older spellings working as hidden aliases. With `required`, a missing value is a usage error
 * (checked after the aliases are read) and the help says "(required)".
 */
function option(command: Command, flags: string, description: string, settings: { aliases?: string[]; required?: boolean } = {}): Command {
  const main = new Option(flags, settings.required ? `${description} (required)` : description);
  command.addOption(main);
  const key = main.attributeName();
  const aliases = (settings.aliases ?? []).map((alias) => {
    const hidden = new Option(`${alias} ${flags.slice(flags.indexOf(" ") + 1)}`).hideHelp();
    command.addOption(hidden);
    return hidden;
  });
  command.hook("preAction", (_, action) => {
    for (const alias of aliases) {
      const value = action.getOptionValue(alias.attributeName());
      if (value === undefined) continue;
      const given = action.getOptionValue(key);
      if (given !== undefined && given !== value) throw new LowrankError("USAGE", `${alias.long} is another name for ${main.long}; give one of them`);
      action.setOptionValue(key, value);
    }
    if (settings.required && action.getOptionValue(key) === undefined) throw new LowrankError("USAGE", `required option '${flags}' not specified`);
  });
  return command;
}

/**
 * Marks every mandatory option "(required)" in its command's help, and checks it just before the
 * action instead of during parsing, so that a mistyped option is reported (with a suggestion) before
 * the option it was meant to be is missed.
 */
function markRequired(command: Command): void {
  for (const o of command.options) {
    if (!o.mandatory) continue;
    o.mandatory = false;
    if (!o.description.endsWith("(required)")) o.description = `${o.description} (required)`;
    command.hook("preAction", (_, action) => {
      if (action.getOptionValue(o.attributeName()) === undefined) throw new LowrankError("USAGE", `required option '${o.flags}' not specified`);
    });
  }
  for (const sub of command.commands) markRequired(sub);
}

export { LOWRANK_VERSION };

/** The `lowrank` command tree; its services come from `container` (see createContext). */
export function buildProgram(container?: DependencyContainer): Command {
  const program = new Command("lowrank")
    .description("LoRA for TypeScript: inspect, merge and import PEFT-compatible adapters")
    .option("--debug", "print stack traces on errors")
    .option("--plugin <module>", "load a backend plugin module (repeatable)", collect)
    .option("--hub-url <url>", "the Hub's address (default HF_ENDPOINT or https://huggingface.co)")
    .option("--device <device>", "ONNX Runtime's execution provider: cpu (default) or cuda (falls back to the CPU with a warning when CUDA is missing)")
    .option("--token <token>", "Hub token (default HF_TOKEN); for `hub serve` and `serve`, the bearer token clients must send (repeatable)", collect)
    .version(LOWRANK_VERSION, "--version", "print the version")
    .showHelpAfterError(false)
    .showSuggestionAfterError(true)
    .configureHelp({ showGlobalOptions: true })
    .exitOverride()
    .configureOutput({ writeErr: () => undefined, outputError: () => undefined });
  const ctx = createContext(() => program.opts<GlobalOptions>(), container);

  const inspect = program
    .command("inspect")
    .description("show an adapter's config, modules, ranks, scalings and trainable parameter count")
    .argument("<adapter>", "PEFT adapter folder")
    .option("--json", "machine-readable output");
  option(inspect, "--model <model>", "also check the adapter against this base model and report the trainable fraction", { aliases: ["--base"] })
    .addHelpText(
      "after",
      "\nExamples:\n  $ lowrank inspect ./my-adapter\n  $ lowrank inspect ./my-adapter --model ./base-model --json\n  $ lowrank inspect org/adapter@main",
    )
    .action((adapter: string, options) => inspectCommand(ctx, adapter, options));

  const merge = program.command("merge").description("merge an adapter into its base (a Hugging Face checkpoint), or combine adapters into a new one");
  option(merge, "--model <model>", "base model folder or Hub id (config.json + safetensors); required unless combining", { aliases: ["--base"] })
    .requiredOption("--adapter <adapter>", "PEFT adapter folder (repeat it, with --combination, to combine adapters)", collect)
    .requiredOption("--out <dir>", "output folder: the merged checkpoint, or the combined adapter")
    .option("--safe", "refuse to write non-finite weights (PEFT's safe_merge)")
    .option("--backend <name>", "merge with a registered backend instead of core")
    .option(
      "--combination <type>",
      "combine the adapters as PEFT's add_weighted_adapter: linear, cat, svd (default), ties, ties_svd, dare_linear, dare_ties, dare_linear_svd, " +
        "dare_ties_svd, magnitude_prune, magnitude_prune_svd",
    )
    .option("--weights <w1,w2,…>", "one weight per --adapter (default 1 each)")
    .option("--svd-rank <n>", "rank of the svd combinations (default the largest input rank)")
    .option("--svd-clamp <q>", "clamp the svd factors at this quantile (0–1)")
    .option("--density <d>", "fraction of values kept by ties, dare_* and magnitude_prune (0–1]")
    .option("--majority-sign-method <m>", "ties / dare_ties sign election: total (default) or frequency")
    .option("--seed <n>", "seed of DARE's random pruning (default 0)")
    .addHelpText(
      "after",
      "\nExamples:\n  $ lowrank merge --model ./base-model --adapter ./my-adapter --out ./merged\n  $ lowrank merge --model ./base-model --adapter " +
        "org/adapter --out ./merged --safe\n  $ lowrank merge --adapter ./a --adapter ./b --weights 0.7,0.3 --combination cat --out ./a-plus-b\n  $ " +
        "lowrank merge --adapter ./a --adapter ./b --combination ties_svd --density 0.5 --svd-rank 8 --out ./ties",
    )
    .action((options) => {
      const combining = options.combination !== undefined || options.adapter.length > 1;
      if (combining) {
        if (options.model)
          throw new LowrankError("USAGE", "--model merges into a model; with --combination the output is a new adapter (merge it into the base afterwards)");
        return combineCommand(ctx, options);
      }
      for (const flag of ["weights", "svdRank", "svdClamp", "density", "majoritySignMethod", "seed"]) {
        if (options[flag] !== undefined)
          throw new LowrankError("USAGE", `--${flag.replace(/[A-Z]/g, (c: string) => `-${c.toLowerCase()}`)} only applies with --combination`);
      }
      if (!options.model) throw new LowrankError("USAGE", "required option '--model <model>' not specified");
      return mergeCommand(ctx, { ...options, adapter: options.adapter[0] });
    });

  const predict = program
    .command("predict")
    .description("run a model (with an adapter, unmerged or merged) and write its logits as safetensors")
    .requiredOption("--model <model>", "model folder")
    .option("--adapter <adapter>", "PEFT adapter folder")
    .option("--merge", "merge the adapter into the weights before running")
    .option("--backend <name>", "tfjs or onnx (default: the best available)")
    .requiredOption("--input-ids <ids.json>", "JSON array of equal-length integer arrays")
    .option("--attention-mask <mask.json>", "JSON array of 0/1 arrays, same shape as the ids")
    .addHelpText(
      "after",
      "\nExamples:\n  $ echo '[[1, 2, 3]]' > ids.json\n  $ lowrank predict --model ./base-model --adapter ./my-adapter --input-ids ids.json --out " +
        "logits.safetensors\n  $ lowrank predict --backend onnx --model model.onnx --adapter ./my-adapter --merge --input-ids ids.json --out " +
        "logits.safetensors",
    );
  option(predict, "--out <out.safetensors>", "where to write logits (and last_hidden_state for encoders)", { aliases: ["--output"], required: true }).action(
    (options) => predictCommand(ctx, options),
  );

  program
    .command("train")
    .description("fine-tune with LoRA (or every parameter with --full) and write a PEFT adapter folder")
    .requiredOption("--model <model>", "base model folder")
    .requiredOption("--data <file>", "text (one example a line) or JSONL with text or input_ids (and label for seq-cls)")
    .requiredOption("--out <dir>", "output folder (adapter, or full checkpoint with --full; checkpoints go in out/checkpoint-N)")
    .option("--task <task>", "causal-lm or seq-cls (default: from the model)")
    .option("--rank <n>", "LoRA rank r (default 8)")
    .option("--alpha <n>", "lora_alpha (default 8)")
    .option("--target-modules <names>", "comma-separated module names, or all-linear (default: PEFT's for the model type)")
    .option("--dropout <p>", "lora_dropout (default 0)")
    .option("--use-dora", "train DoRA (weight-decomposed LoRA)")
    .option("--use-rslora", "scale by alpha/sqrt(r)")
    .option("--init <how>", "init_lora_weights: true, false, gaussian, pissa, olora")
    .option("--steps <n>", "optimizer steps")
    .option("--epochs <n>", "passes over the data (default 1)")
    .option("--lr <x>", "peak learning rate (default 2e-4; 5e-5 with --full)")
    .option("--batch-size <n>", "examples per micro-batch (default 8)")
    .option("--grad-accum <n>", "micro-batches per optimizer step (default 1)")
    .option("--seq-len <n>", "longest example in tokens (default 128)")
    .option("--packing", "pack short examples into sequences of --seq-len tokens, attention kept within each (causal LM)")
    .option("--gradient-checkpointing", "recompute each block's activations in the backward pass: less memory, ~1/3 more compute (onnx)")
    .option("--no-gradient-checkpointing", "hold every activation (default: onnx recomputes only when memory is short)")
    .option("--warmup <n>", "warm-up steps (default 0)")
    .option("--schedule <s>", "constant, linear or cosine (default linear)")
    .option("--weight-decay <x>", "AdamW's decoupled weight decay (default 0)")
    .option("--max-grad-norm <x>", "clip the global gradient norm (default 1; 0 = off)")
    .option("--seed <n>", "seed for initialisation, batch order and dropout (default 42)")
    .option("--eval-data <file>", "held-out examples for eval loss / perplexity / accuracy")
    .option("--eval-every <n>", "evaluate every N steps")
    .option("--save-every <n>", "write a resumable checkpoint every N steps")
    .option("--resume <checkpoint>", "continue from out/checkpoint-N (same settings)")
    .option("--log <file.jsonl>", "one JSON line per step (step, loss, lr, …) and per evaluation")
    .option("--full", "full fine-tuning of every parameter, for comparison")
    .option("--backend <name>", "training backend (default: the best available)")
    .option("--json", "print the summary as JSON (with the backend that ran)")
    .addHelpText(
      "after",
      "\nExamples:\n  $ lowrank train --model models/gpt2-mini --data data.txt --rank 8 --alpha 16 --steps 200 --out ./my-adapter\n  $ lowrank train " +
        "--model ./roberta --data labelled.jsonl --task seq-cls --epochs 3 --eval-data held-out.jsonl --out ./cls-adapter\n  $ lowrank train --model " +
        "models/gpt2-mini --data data.txt --steps 200 --save-every 50 --out run/\n  $ lowrank train --model models/gpt2-mini --data data.txt " +
        "--steps 200 --resume run/checkpoint-100 --out run/",
    )
    .action((options) => trainCommand(ctx, options));

  program
    .command("generate")
    .description("continue a prompt with a causal language model (optionally with an adapter)")
    .requiredOption("--model <model>", "model folder")
    .option("--adapter <adapter>", "PEFT adapter folder")
    .option("--merge", "merge the adapter before generating")
    .option("--prompt <text>", "prompt text (needs tokenizer.json in the model folder)")
    .option("--prompt-ids <ids>", "prompt as comma-separated token ids")
    .option("--max-new-tokens <n>", "tokens to add (default 32)")
    .option("--temperature <x>", "0 = greedy (default); higher = more random")
    .option("--top-k <n>", "sample from the k most likely tokens")
    .option("--top-p <x>", "sample from the smallest set with this probability mass")
    .option("--seed <n>", "sampling seed")
    .option("--no-cache", "recompute every step instead of using the key/value cache")
    .option("--backend <name>", "inference backend")
    .option("--json", "print ids (and text) as JSON")
    .addHelpText(
      "after",
      "\nExamples:\n  $ lowrank generate --model models/gpt2-mini --adapter demo-output/adapter --prompt 'name : Aromi | food : Chinese ||'\n  $ " +
        "lowrank generate --model ./base --prompt-ids 1,2,3 --temperature 0.8 --top-p 0.9 --seed 1 --json",
    )
    .action((options) => generateCommand(ctx, options));

  const onnx = program.command("onnx").description("ONNX models: merge adapters into them, export checkpoints");
  onnx
    .command("merge")
    .description("add an adapter's update to an ONNX model's weights (found by name or through the graph)")
    .requiredOption("--model <model.onnx>", "the ONNX model")
    .requiredOption("--adapter <adapter>", "PEFT adapter folder")
    .requiredOption("--out <merged.onnx>", "where to write the merged model")
    .option("--safe", "refuse to write non-finite weights")
    .addHelpText("after", "\nExamples:\n  $ lowrank onnx merge --model model.onnx --adapter ./my-adapter --out merged.onnx")
    .action((options) => onnxMergeCommand(ctx, options));
  onnx
    .command("export")
    .description("export a GPT-2 checkpoint to ONNX (optionally with an adapter merged in)")
    .requiredOption("--model <model>", "GPT-2 model folder")
    .option("--adapter <adapter>", "PEFT adapter to merge in")
    .requiredOption("--out <model.onnx>", "where to write the ONNX model")
    .addHelpText("after", "\nExamples:\n  $ lowrank onnx export --model models/gpt2-mini --adapter demo-output/adapter --out merged.onnx")
    .action((options) => onnxExportCommand(ctx, options));

  program
    .command("pull")
    .description("download a Hub repo into the Python-compatible cache and print its snapshot folder")
    .argument("<repo-id>", "org/name")
    .option("--revision <rev>", "branch or commit (default main)")
    .option("--include <globs>", "comma-separated patterns, e.g. '*.json,*.safetensors'")
    .option("--json", "print the result as JSON")
    .addHelpText(
      "after",
      "\nExamples:\n  $ lowrank pull org/model\n  $ HF_ENDPOINT=http://127.0.0.1:8080 lowrank pull team/adapter --revision main --include " +
        "'*.json,*.safetensors'",
    )
    .action((repo: string, options) => pullCommand(ctx, repo, options));

  program
    .command("push")
    .description("publish an adapter folder to the Hub with a PEFT model card; prints the commit URL")
    .argument("<adapter-dir>", "PEFT adapter folder")
    .requiredOption("--repo <id>", "org/name (created when missing)")
    .option("--private", "create the repo private")
    .option("--revision <branch>", "branch to commit to (default main)")
    .option("--message <text>", "commit message")
    .addHelpText(
      "after",
      "\nExamples:\n  $ HF_TOKEN=hf_... lowrank push ./my-adapter --repo you/my-adapter\n  $ lowrank --hub-url http://127.0.0.1:8080 --token t push " +
        "./my-adapter --repo team/adapter --private",
    )
    .action((dir: string, options) => pushCommand(ctx, dir, options));

  program
    .command("hub")
    .description("the self-hosted Hub-compatible registry")
    .command("serve")
    .description("serve a Hub-compatible registry from a folder (HF_ENDPOINT=<url> for clients)")
    .requiredOption("--dir <storage>", "storage folder (created when missing)")
    .option("--port <port>", "port (default 8080; 0 = any free port)")
    .option("--host <host>", "address to listen on (default 127.0.0.1)")
    .option("--max-body-bytes <n>", "largest JSON / NDJSON request body (default 100 MB; larger gets 413)")
    .option("--max-file-bytes <n>", "largest uploaded file (default 5 GB)")
    .addHelpText(
      "after",
      "\nExamples:\n  $ lowrank hub serve --dir ./hub-data --port 8080\n  $ lowrank --token secret hub serve --dir ./hub-data --port 8080 --host 0.0.0.0",
    )
    .action((options) => hubServeCommand(ctx, { ...options, token: program.opts<GlobalOptions>().token }));

  program
    .command("convert")
    .description("convert an adapter between PEFT, llama.cpp's GGUF, mlx-lm and ONNX Runtime's .onnx_adapter (the input format is detected)")
    .requiredOption("--to <format>", "peft, gguf, mlx or onnx-adapter")
    .requiredOption("--adapter <adapter>", "the adapter: a PEFT folder or Hub id, a .gguf or .onnx_adapter file, or an mlx-lm adapter folder")
    .requiredOption("--base <model>", "its base model folder or Hub id (names, architecture, head counts)")
    .requiredOption("--out <path>", "the converted adapter (a folder for peft and mlx, a file for gguf and onnx-adapter)")
    .option("--outtype <type>", "GGUF data: f32 (default), f16, bf16 or q8_0")
    .option("--input-names <naming>", "onnx-adapter inputs: olive (default; Olive / ONNX Runtime GenAI models) or lowrank (backend-onnx's slots)")
    .option("--json", "print a JSON summary")
    .addHelpText(
      "after",
      "\nExamples:\n  $ lowrank convert --to gguf --adapter ./my-adapter --base ./llama --out my-adapter.gguf   # then: llama-cli -m base.gguf --lora my-adapter.gguf\n" +
        "  $ lowrank convert --to mlx --adapter ./my-adapter --base ./llama --out mlx-adapter   # then: mlx_lm.generate --model <base> --adapter-path mlx-adapter\n" +
        "  $ lowrank convert --to peft --adapter other.gguf --base ./llama --out other-adapter",
    )
    .action((options) => convertCommand(ctx, options));

  program
    .command("serve")
    .description("an OpenAI-compatible server: one base model, many LoRA adapters, mixed-adapter batches (ONNX Runtime)")
    .requiredOption("--model <model>", "a Hugging Face decoder folder or Hub id (or a decoder .onnx exported with a key/value cache)")
    .option("--adapter <NAME=adapter>", "an adapter folder or Hub id served as model NAME (repeatable)", collect)
    .option("--port <port>", "port (default 8000; 0 = any free port)")
    .option("--host <host>", "address to listen on (default 127.0.0.1)")
    .option("--served-model-name <name>", "the base model's name in requests (default: --model as given)")
    .option("--max-batch <n>", "rows decoded together (default 8)")
    .option("--max-adapters <n>", "adapters held at once, least recently used unloaded first (default 16)")
    .option("--max-tokens <n>", "largest max_tokens a request may ask (default 4096, capped by the context)")
    .option("--max-body-bytes <n>", "largest request body (default 1 MB; larger gets 413)")
    .addHelpText(
      "after",
      "\nExamples:\n  $ lowrank serve --model models/gpt2-mini --adapter e2e=./adapter --port 8000\n" +
        "  $ lowrank --token secret serve --model ./llama --adapter sql=you/sql-lora --adapter chat=./chat-lora\n" +
        '  $ curl -H \'Authorization: Bearer secret\' localhost:8000/v1/completions -d \'{"model": "sql", "prompt": "…", "max_tokens": 32}\'',
    )
    .action((options) => serveCommand(ctx, { ...options, token: program.opts<GlobalOptions>().token?.at(-1), hubUrl: program.opts<GlobalOptions>().hubUrl }));

  program
    .command("web")
    .description("serve the browser example page: a model and adapters run in the browser by onnxruntime-web (static files only)")
    .requiredOption("--model <model>", "a Hugging Face decoder folder or Hub id (its graph built with a key/value cache), or a decoder .onnx exported with one")
    .option("--adapter <NAME=adapter>", "an adapter folder or Hub id the page offers as NAME (repeatable)", collect)
    .option("--port <port>", "port (default 8080; 0 = any free port)")
    .option("--host <host>", "address to listen on (default 127.0.0.1)")
    .option("--log-requests", "print each path the browser fetches")
    .addHelpText(
      "after",
      "\nExamples:\n  $ lowrank web --model models/gpt2-mini --adapter e2e=./adapter --port 8080   # then open http://127.0.0.1:8080/\n" +
        "  $ lowrank web --model ./llama/model.kv.onnx --adapter a=./lora-a --adapter b=./lora-b --log-requests\n" +
        '  # automation: http://127.0.0.1:8080/?adapter=e2e&prompt_ids=1,2,3&max_new_tokens=16 writes the new ids into <pre id="result">',
    )
    .action((options) => webCommand(ctx, { ...options, hubUrl: program.opts<GlobalOptions>().hubUrl }));

  const imports = program.command("import").description("turn other LoRA formats into PEFT adapters");
  const loralib = imports
    .command("loralib")
    .description("import a microsoft/LoRA (loralib) lora_state_dict checkpoint")
    .argument("<checkpoint>", "the .pt file saved from loralib.lora_state_dict(model)")
    .requiredOption("--rank <n>", "loralib's r (rank of one group)")
    .requiredOption("--alpha <n>", "loralib's lora_alpha")
    .requiredOption("--target-modules <names>", "comma-separated: the fused module (c_attn) or one projection per --enable-lora entry")
    .option("--enable-lora <flags>", "MergedLinear's enable_lora, e.g. 1,0,1")
    .option("--fan-in-fan-out", "loralib's fan_in_fan_out (checked against the base layout)")
    .requiredOption("--out <dir>", "output adapter folder")
    .addHelpText(
      "after",
      "\nExamples:\n  $ lowrank import loralib lora_state_dict.pt --model ./gpt2 --rank 4 --alpha 32 --target-modules c_attn --enable-lora 1,0,1 " +
        "--out ./imported",
    );
  option(loralib, "--model <model>", "the base model folder it was trained on", { aliases: ["--base"], required: true }).action((file: string, options) =>
    importLoralibCommand(ctx, file, options),
  );

  const analyze = program
    .command("analyze")
    .description("the LoRA paper's rank analysis of an adapter: singular values of each ΔW, effective rank, similarity to another adapter")
    .argument("<adapter>", "PEFT adapter folder")
    .option("--against <adapter>", "also the subspace similarity φ(i, j) with this adapter's top directions (the paper's Eq. 4)")
    .option("--json", "machine-readable output (modules[].name, singular_values, effective_rank, …)")
    .option("--plot <file.svg>", "an SVG heatmap: φ per module with --against, else the spectra")
    .addHelpText(
      "after",
      "\nExamples:\n  $ lowrank analyze ./my-adapter\n  $ lowrank analyze ./my-adapter --model ./base-model --json\n  $ lowrank analyze ./run-seed1 " +
        "--against ./run-seed2 --plot similarity.svg",
    );
  option(analyze, "--model <model>", "the base model, for ‖ΔW‖ / ‖W‖ per module", { aliases: ["--base"] }).action((adapter: string, options) =>
    analyzeCommand(ctx, adapter, options),
  );

  program
    .command("bench")
    .description("measure the paper's claims on this machine: parameters, training, latency, merge, size, quality")
    .option("--quick", "small sizes and few repeats (under 3 minutes; for CI)")
    .option("--json <file>", "write every figure and the ratios as JSON")
    .option("--report <file.md>", "write a Markdown page with tables, and SVG charts in a folder beside it")
    .option("--model <model>", "the GPT-2 base for the quality table (default: the embedded models/gpt2-mini)")
    .option("--data <e2e.txt>", "E2E data for the quality table (default: data/e2e/valid.txt)")
    .addOption(new Option("--worker <job>").hideHelp())
    .addHelpText("after", "\nExamples:\n  $ lowrank bench --quick\n  $ lowrank bench --json bench/out/bench.json --report docs/benchmarks.md")
    .action((options) => benchCommand(ctx, options));

  program
    .command("doctor")
    .description("what runs here: ONNX Runtime's execution providers (CPU, CUDA), TensorFlow.js's engine, and how to install the CUDA provider")
    .option("--json", "machine-readable output")
    .addHelpText("after", "\nExamples:\n  $ lowrank doctor\n  $ lowrank doctor --json")
    .action((options) => doctorCommand(ctx, options));

  program
    .command("backends")
    .description("list registered backends and whether they run here")
    .option("--json", "machine-readable output")
    .addHelpText("after", "\nExamples:\n  $ lowrank backends\n  $ lowrank --plugin ./my-backend.mjs backends --json")
    .action((options) => backendsCommand(ctx, options));

  program.hook("preAction", () => void choiceFlag("--device", program.opts<GlobalOptions>().device, ["cpu", "cuda"] as const));
  markRequired(program);
  return program;
}

/**
 * Runs the CLI; returns the exit code (0 ok, 2 bad input or usage, 1 other failure). `container`
 * may register LOGGER, HUB_CLIENT or BACKEND_SETUP (exported from cli-context) to replace them.
 */
export async function runCli(argv: string[], options: { container?: DependencyContainer } = {}): Promise<number> {
  const program = buildProgram(options.container);
  if (argv.length === 0) {
    process.stdout.write(program.helpInformation());
    return 0;
  }
  try {
    await program.parseAsync(argv, { from: "user" });
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === "commander.helpDisplayed" || error.code === "commander.help" || error.code === "commander.version") return 0;
      // Commander puts its "(Did you mean …?)" suggestion on a second line: keep it on the one line.
      const message = error.message
        .replace(/^error: /, "")
        .split("\n")
        .filter(Boolean)
        .join(" ");
      process.stderr.write(`lowrank: error: ${message}\n`);
      return 2;
    }
    const debug = argv.includes("--debug");
    const lowrank = error instanceof LowrankError;
    const message = (error instanceof Error ? error.message : String(error)).split("\n")[0];
    process.stderr.write(`lowrank: error: ${message}\n`);
    if (debug && error instanceof Error) process.stderr.write(`${error.stack}\n`);
    return lowrank && error.usage ? 2 : 1;
  }
}
