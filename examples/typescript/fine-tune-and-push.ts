// Fine-tune the embedded GPT-2 with LoRA on a few E2E lines, then publish the adapter to a Hub
// (huggingface.co, or `lowrank hub serve`: pass its URL as hubUrl, or set HF_ENDPOINT / HF_TOKEN).
import { readFileSync, writeFileSync, mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { TfjsBackend } from "@lowrank/backend-tfjs";
import { pushAdapter, resolveHubConfig } from "@lowrank/hub";

export async function fineTuneAndPush(options: {
  root: string;
  repo: string;
  hubUrl?: string;
  token?: string;
  steps?: number;
}): Promise<{ commitUrl: string; finalLoss: number; adapterDir: string }> {
  const work = mkdtempSync(path.join(os.tmpdir(), "lowrank-example-"));
  const lines = readFileSync(path.join(options.root, "data/e2e/valid.txt"), "utf8").split("\n").filter(Boolean).slice(0, 64);
  const data = path.join(work, "e2e.txt");
  writeFileSync(data, lines.map((l) => l.replace("||", " || ")).join("\n"));
  const backend = new TfjsBackend();
  await backend.init({ logger: { warn: () => {}, info: () => {} } });
  const adapterDir = path.join(work, "adapter");
  let finalLoss = NaN;
  for await (const event of backend.train({
    model: path.join(options.root, "models/gpt2-mini"),
    data,
    out: adapterDir,
    steps: options.steps ?? 20,
    batchSize: 8,
    learningRate: 2e-3,
    lora: { r: 4, lora_alpha: 32, target_modules: ["c_attn"], base_model_name_or_path: "lowrank/gpt2-mini" },
  })) {
    if (event.type === "done") finalLoss = event.finalLoss;
  }
  const config = resolveHubConfig({ hubUrl: options.hubUrl, token: options.token });
  const { commitUrl } = await pushAdapter({ dir: adapterDir, repo: options.repo, config });
  return { commitUrl, finalLoss, adapterDir };
}
