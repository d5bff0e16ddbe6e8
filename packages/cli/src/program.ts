import { Command, CommanderError, Option } from "commander";
import { LowrankError } from "@lowrank/core";
import { createContext, type GlobalOptions } from "./cli-context.js";
import { backendsCommand } from "./commands/backends.js";
import { importLoralibCommand } from "./commands/import-loralib.js";
import { inspectCommand } from "./commands/inspect.js";
import { mergeCommand } from "./commands/merge.js";
import { predictCommand } from "./commands/predict.js";

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

/** The `lowrank` command tree. */
export function buildProgram(): Command {
  const program = new Command("lowrank")
    .description("LoRA for TypeScript: inspect, merge and import PEFT-compatible adapters")
    .option("--debug", "print stack traces on errors")
    .option("--plugin <module>", "load a backend plugin module (repeatable)", collect)
    .showHelpAfterError(false)
    .exitOverride()
    .configureOutput({ writeErr: () => undefined, outputError: () => undefined });
  const ctx = createContext(() => program.opts<GlobalOptions>());

  program
    .command("inspect")
    .description("show an adapter's config, modules, ranks, scalings and trainable parameter count")
    .argument("<adapter>", "PEFT adapter folder")
    .option("--json", "machine-readable output")
    .option("--base <model>", "also check the adapter against this base model and report the trainable fraction")
    .action((adapter: string, options) => inspectCommand(ctx, adapter, options));

  program
    .command("merge")
    .description("merge an adapter into its base and write a Hugging Face checkpoint")
    .requiredOption("--base <model>", "base model folder (config.json + safetensors)")
    .requiredOption("--adapter <adapter>", "PEFT adapter folder")
    .requiredOption("--out <dir>", "output folder")
    .option("--safe", "refuse to write non-finite weights (PEFT's safe_merge)")
    .option("--backend <name>", "merge with a registered backend instead of core")
    .action((options) => mergeCommand(ctx, options));

  program
    .command("predict")
    .description("run a model (with an adapter, unmerged or merged) and write its logits as safetensors")
    .requiredOption("--model <model>", "model folder")
    .option("--adapter <adapter>", "PEFT adapter folder")
    .option("--merge", "merge the adapter into the weights before running")
    .option("--backend <name>", "tfjs or onnx (default: the best available)")
    .requiredOption("--input-ids <ids.json>", "JSON array of equal-length integer arrays")
    .option("--attention-mask <mask.json>", "JSON array of 0/1 arrays, same shape as the ids")
    .requiredOption("--output <out.safetensors>", "where to write logits (and last_hidden_state for encoders)")
    .action((options) => predictCommand(ctx, options));

  const imports = program.command("import").description("turn other LoRA formats into PEFT adapters");
  imports
    .command("loralib")
    .description("import a microsoft/LoRA (loralib) lora_state_dict checkpoint")
    .argument("<checkpoint>", "the .pt file saved from loralib.lora_state_dict(model)")
    .requiredOption("--base <model>", "the base model folder it was trained on")
    .requiredOption("--rank <n>", "loralib's r (rank of one group)")
    .requiredOption("--alpha <n>", "loralib's lora_alpha")
    .requiredOption("--target-modules <names>", "comma-separated: the fused module (c_attn) or one projection per --enable-lora entry")
    .option("--enable-lora <flags>", "MergedLinear's enable_lora, e.g. 1,0,1")
    .option("--fan-in-fan-out", "loralib's fan_in_fan_out (checked against the base layout)")
    .requiredOption("--out <dir>", "output adapter folder")
    .action((file: string, options) => importLoralibCommand(ctx, file, options));

  program
    .command("backends")
    .description("list registered backends and whether they run here")
    .option("--json", "machine-readable output")
    .action((options) => backendsCommand(ctx, options));

  program.addOption(new Option("--version", "print the version").hideHelp());
  return program;
}

/** Runs the CLI; returns the exit code (0 ok, 2 bad input or usage, 1 other failure). */
export async function runCli(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: "user" });
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === "commander.helpDisplayed" || error.code === "commander.help" || error.code === "commander.version") return 0;
      const message = error.message.replace(/^error: /, "").split("\n")[0];
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
