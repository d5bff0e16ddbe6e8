import { describe, expect, test } from "vitest";
import type { LoraConfig } from "@lowrank/core";
import { isHubRepoId } from "./hub-repo-id.js";
import { modelCard } from "./model-card.js";

const config = (base: string | null | undefined) =>
  ({
    peft_type: "LORA",
    r: 8,
    lora_alpha: 16,
    lora_dropout: 0,
    use_rslora: false,
    use_dora: false,
    target_modules: ["c_attn"],
    task_type: "CAUSAL_LM",
    base_model_name_or_path: base,
  }) as unknown as LoraConfig;

/** The YAML metadata block of a card. */
const metadata = (card: string) => /^---\n([\s\S]*?)\n---\n/.exec(card)![1];

describe("the card's base_model is a Hub repo id or absent", () => {
  test.each([
    "/tmp/x/gpt2",
    "./models/gpt2-mini",
    "../shared/fixtures/gpt2-tiny",
    "models/gpt2-mini/",
    "C:\\x",
    "C:\\models\\gpt2",
    "C:/models/gpt2",
    "~/models/gpt2",
    ".",
    "..",
    "org/name/extra",
    "org/na me",
    "org/-name",
    "org/name.",
    "org/na--me",
    "org/na..me",
    "org/name.git",
    "",
  ])("a local path or non-id %j is left out of the metadata", (base) => {
    const card = modelCard({ repo: "me/adapter", config: config(base) });
    const yaml = metadata(card);
    expect(yaml).not.toMatch(/base_model/);
    expect(yaml).toMatch(/^library_name: peft$/m);
    expect(yaml).toMatch(/^- lora$/m);
    // The local path does not leak anywhere into the published card.
    if (base.length > 2) expect(card).not.toContain(base);
    expect(card).toContain('from_pretrained("<base model>")');
  });

  test.each(["gpt2", "gpt2-tiny", "openai-community/gpt2", "meta-llama/Llama-3.2-1B", "EleutherAI/pythia-70m_v0.1", "a/b"])("the Hub id %j is kept", (base) => {
    const card = modelCard({ repo: "me/adapter", config: config(base) });
    const yaml = metadata(card);
    expect(yaml).toMatch(new RegExp(`^base_model: ${base.replace(/[.]/g, "\\.")}$`, "m"));
    expect(yaml).toContain(`- "base_model:adapter:${base}"`);
    expect(card).toContain(`from_pretrained(${JSON.stringify(base)})`);
  });

  test("no base model at all: no base_model line", () => {
    expect(metadata(modelCard({ repo: "me/adapter", config: config(undefined) }))).not.toMatch(/base_model/);
    expect(metadata(modelCard({ repo: "me/adapter", config: config(null) }))).not.toMatch(/base_model/);
  });

  test("a local base names only its folder, as a hint in the text", () => {
    const card = modelCard({ repo: "me/adapter", config: config("/home/someone/private/gpt2-mini") });
    expect(card).toContain("`gpt2-mini`");
    expect(card).not.toContain("/home/someone");
  });
});

describe("isHubRepoId", () => {
  test.each([
    ["gpt2", true],
    ["org/name", true],
    ["Org_1/na.me-2", true],
    ["a", true],
    [`o/${"n".repeat(96)}`, true],
    [`o/${"n".repeat(97)}`, false],
    ["org/", false],
    ["/name", false],
    ["org//name", false],
    [".name", false],
    ["name-", false],
    ["org/name/x", false],
    ["org name", false],
    ["org/n@me", false],
    ["örg/name", false],
    ["org/name.git", false],
    ["a--b", false],
    ["a..b", false],
  ] as const)("%j → %s", (id, ok) => {
    expect(isHubRepoId(id)).toBe(ok);
  });
});

describe("an id-shaped name that is a local folder is a local path", () => {
  test("models/gpt2-mini trained from a checkout: no base_model", () => {
    const card = modelCard({ repo: "me/adapter", config: config("models/gpt2-mini"), isLocalPath: (p) => p === "models/gpt2-mini" });
    expect(metadata(card)).not.toMatch(/base_model/);
    expect(card).toContain("folder `gpt2-mini`");
    expect(metadata(modelCard({ repo: "me/adapter", config: config("models/gpt2-mini"), isLocalPath: () => false }))).toMatch(
      /^base_model: models\/gpt2-mini$/m,
    );
  });
});
