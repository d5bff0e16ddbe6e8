import type { LoraConfig } from "@lowrank/core";
import { isHubRepoId } from "./hub-repo-id.js";

/** What a training run wrote beside the adapter (training_summary.json), as far as the card uses it. */
export interface TrainingSummary {
  steps?: number;
  final_loss?: number | null;
  eval_loss?: number;
  eval_perplexity?: number;
  trainable_parameters?: number;
  total_parameters?: number;
  seconds?: number;
  data?: string;
  seed?: number;
}

const yamlString = (s: string): string => (/^[\w./-]+$/.test(s) ? s : JSON.stringify(s));

/** The last folder name of a local path ("/x/y/gpt2-mini/" → "gpt2-mini"), for a hint that shows no full path. */
const folderName = (p: string): string | undefined =>
  p
    .split(/[\\/]+/)
    .filter((s) => s !== "" && s !== "." && s !== "..")
    .pop();

/**
 * A Hub model card (README.md) for a PEFT adapter: YAML metadata PEFT and the Hub read
 * (library_name: peft, base_model, tags with lora, pipeline_tag), then what the adapter is, how to
 * load it with PEFT, and the training summary when there is one. Returns the card's text.
 *
 * `base_model` (and the `base_model:adapter:` tag) is written only when the adapter's
 * `base_model_name_or_path` is a Hub repo id ({@link isHubRepoId}): the Hub rejects cards whose
 * base_model is not one, and a local path ("/tmp/x/gpt2", "./models/m", "C:\\m") must not be
 * published. An id-shaped name that `isLocalPath` finds on disk ("models/gpt2-mini" trained from the
 * repository's folder) is a local path too. A local base is named by its folder name only, in the text.
 */
export function modelCard(params: { repo: string; config: LoraConfig; summary?: TrainingSummary; isLocalPath?: (p: string) => boolean }): string {
  const { config, summary, repo } = params;
  const given = config.base_model_name_or_path ?? undefined;
  const base = given !== undefined && isHubRepoId(given) && !params.isLocalPath?.(given) ? given : undefined;
  const localBase = given && !base ? folderName(given) : undefined;
  const pipeline = config.task_type === "SEQ_CLS" ? "text-classification" : config.task_type === "CAUSAL_LM" ? "text-generation" : undefined;
  const tags = ["peft", "lora", "lowrank", ...(config.use_dora ? ["dora"] : []), ...(base ? [`base_model:adapter:${base}`] : [])];
  const targets = Array.isArray(config.target_modules) ? config.target_modules.join(", ") : String(config.target_modules ?? "PEFT's defaults");
  const lines = [
    "---",
    "library_name: peft",
    ...(base ? [`base_model: ${yamlString(base)}`] : []),
    ...(pipeline ? [`pipeline_tag: ${pipeline}`] : []),
    "tags:",
    ...tags.map((t) => `- ${yamlString(t)}`),
    "---",
    "",
    `# ${repo}`,
    "",
    `A ${config.use_dora ? "DoRA" : "LoRA"} adapter${base ? ` for \`${base}\`` : ""}, made with [lowrank](https://www.npmjs.com/package/@lowrank/cli) ` +
      `in the PEFT format.`,
    ...(localBase
      ? [
          "",
          `It was trained on a local copy of a base model (folder \`${localBase}\`), so the card names no \`base_model\`: add the base model's Hub id ` +
            `to the metadata above if it has one.`,
        ]
      : []),
    "",
    "| setting | value |",
    "|---|---|",
    `| r | ${config.r} |`,
    `| lora_alpha | ${config.lora_alpha} |`,
    `| target_modules | ${targets} |`,
    `| lora_dropout | ${config.lora_dropout} |`,
    `| use_rslora | ${config.use_rslora} |`,
    `| task_type | ${config.task_type ?? "-"} |`,
    "",
    "## Use it",
    "",
    "```python",
    "from peft import PeftModel",
    "from transformers import AutoModelForCausalLM",
    "",
    `base = AutoModelForCausalLM.from_pretrained(${JSON.stringify(base ?? "<base model>")})`,
    `model = PeftModel.from_pretrained(base, ${JSON.stringify(repo)})`,
    "```",
    "",
    "```sh",
    `lowrank merge --base ${base ?? "<base model>"} --adapter ${repo} --out merged/`,
    "```",
  ];
  if (summary) {
    lines.push("", "## Training", "", "| | |", "|---|---|");
    const row = (k: string, v: unknown) =>
      v !== undefined && v !== null && lines.push(`| ${k} | ${typeof v === "number" && !Number.isInteger(v) ? v.toFixed(4) : v} |`);
    row("steps", summary.steps);
    row("final training loss", summary.final_loss);
    row("eval loss", summary.eval_loss);
    row("eval perplexity", summary.eval_perplexity);
    row("trainable parameters", summary.trainable_parameters?.toLocaleString("en-US"));
    row("total parameters", summary.total_parameters?.toLocaleString("en-US"));
    row("seconds", summary.seconds);
    row("seed", summary.seed);
  }
  return `${lines.join("\n")}\n`;
}
