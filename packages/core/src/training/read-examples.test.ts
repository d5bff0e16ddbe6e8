import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { ChatTemplate } from "../text/chat-template.js";
import { loadTokenizer } from "../text/load-tokenizer.js";
import type { TextTokenizer } from "../text/tokenizer.js";
import { captureLowrankError, captureLowrankRejection } from "../testing/capture-error.js";
import type { TrainingExample } from "./batches.js";
import type { PackedExample } from "./pack-examples.js";
import { decodeUtf8, readExamples, type ReadExamplesOptions } from "./read-examples.js";

describe("decodeUtf8", () => {
  test("valid UTF-8 (with a byte-order mark) decodes; the first invalid line is named", () => {
    expect(decodeUtf8(Buffer.from("\ufeffcafé\nnaïve"), "f")).toBe("café\nnaïve");
    expect(captureLowrankError(() => decodeUtf8(Buffer.from([0x61, 0x0a, 0x62, 0x0a, 0x63, 0xe9, 0x0a, 0x64]), "--data f")).message).toBe(
      "--data f line 3: not valid UTF-8 text (save the file as UTF-8)",
    );
    // A sequence cut at the very end of the file.
    expect(captureLowrankError(() => decodeUtf8(Buffer.from([0x61, 0x0a, 0xe2, 0x82]), "--data f")).message).toMatch(/^--data f line 2: /);
  });
});

const GPT2_MINI = path.resolve(import.meta.dirname, "../../../../models/gpt2-mini");
const EOS = 4095; // gpt2-mini's <|endoftext|>
const IM_START = 4096;
const IM_END = 4097;
const CHATML =
  "{{ bos_token }}{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

const tmp = mkdtempSync(path.join(os.tmpdir(), "lowrank-read-examples-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let gpt2: TextTokenizer;
let chat: TextTokenizer;
/** The ChatML folder's tokenizer, decoding special tokens too. */
let raw: Tokenizer;
const chatDir = path.join(tmp, "chatml");

beforeAll(async () => {
  gpt2 = (await loadTokenizer(GPT2_MINI, { eos_token_id: EOS }))!;
  // gpt2-mini's BPE with ChatML's two special tokens added, as Qwen's tokenizer has them.
  mkdirSync(chatDir);
  const json = JSON.parse(readFileSync(path.join(GPT2_MINI, "tokenizer.json"), "utf8"));
  const special = { special: true, single_word: false, lstrip: false, rstrip: false, normalized: false };
  json.added_tokens.push({ id: IM_START, content: "<|im_start|>", ...special }, { id: IM_END, content: "<|im_end|>", ...special });
  writeFileSync(path.join(chatDir, "tokenizer.json"), JSON.stringify(json));
  const config = { bos_token: "<|endoftext|>", eos_token: "<|im_end|>", pad_token: "<|endoftext|>", chat_template: CHATML };
  writeFileSync(path.join(chatDir, "tokenizer_config.json"), JSON.stringify(config));
  chat = (await loadTokenizer(chatDir))!;
  raw = new Tokenizer(json, config);
});

let files = 0;
/** Writes `lines` to a new .jsonl file (objects as JSON, strings as they are). */
function data(lines: readonly unknown[], ext = "jsonl"): string {
  const file = path.join(tmp, `data-${++files}.${ext}`);
  writeFileSync(file, lines.map((l) => (typeof l === "string" ? l : JSON.stringify(l))).join("\n"));
  return file;
}

const causal = (tokenizer: TextTokenizer | undefined, extra: Partial<ReadExamplesOptions> = {}): ReadExamplesOptions => ({
  task: "causal-lm",
  tokenizer,
  seqLen: 256,
  vocabSize: 4098,
  eosTokenId: tokenizer?.eosTokenId,
  ...extra,
});

/** The trained runs of a row of labels, decoded with special tokens. */
function trainedRuns(labels: readonly number[]): string[] {
  const runs: string[] = [];
  let run: number[] = [];
  for (const label of [...labels, -100]) {
    if (label >= 0) run.push(label);
    else if (run.length > 0) {
      runs.push(raw.decode(run, { skip_special_tokens: false }));
      run = [];
    }
  }
  return runs;
}

describe("readExamples: text, input_ids (every token trained)", () => {
  test("text lines (plain file or JSONL `text`) end with EOS, once; `input_ids` are taken as they are; no labels", async () => {
    const hello = gpt2.encode("Hello world");
    const fromText = await readExamples(data(["Hello world", "", "Hello world<|endoftext|>"], "txt"), causal(gpt2));
    expect(fromText).toEqual([{ ids: [...hello, EOS] }, { ids: [...hello, EOS] }]);
    const fromJsonl = await readExamples(data([{ text: "Hello world" }, { input_ids: [5, 6, 7] }]), causal(gpt2));
    expect(fromJsonl).toEqual([{ ids: [...hello, EOS] }, { ids: [5, 6, 7] }]);
  });
});

describe("readExamples: prompt and completion (loss on the completion)", () => {
  test("prompt tokens then completion tokens then EOS; labels −100 on the prompt, the ids elsewhere", async () => {
    const [example] = await readExamples(data([{ prompt: "Q: What is 2+2?\nA:", completion: " 4" }]), causal(gpt2));
    const prompt = gpt2.encode("Q: What is 2+2?\nA:");
    const completion = gpt2.encode(" 4");
    expect(example).toEqual({ ids: [...prompt, ...completion, EOS], labels: [...prompt.map(() => -100), ...completion, EOS] });
    expect(trainedRuns(example!.labels!)).toEqual([" 4<|endoftext|>"]);
  });

  test("a completion that ends with EOS gets no second one; an empty prompt trains every token; an empty completion trains EOS", async () => {
    const examples = await readExamples(
      data([
        { prompt: "a", completion: " b<|endoftext|>" },
        { prompt: "", completion: "c d" },
        { prompt: "e f", completion: "" },
      ]),
      causal(gpt2),
    );
    expect(examples.map((e) => trainedRuns(e.labels!))).toEqual([[" b<|endoftext|>"], ["c d<|endoftext|>"], ["<|endoftext|>"]]);
  });

  test("cut to seqLen, ids and labels alike; an example whose completion is cut off entirely is skipped", async () => {
    const prompt = "one two three four five";
    const n = gpt2.encode(prompt).length;
    const file = data([
      { prompt, completion: " six" },
      { prompt: "x", completion: " y" },
    ]);
    const [x, y] = [gpt2.encode("x"), gpt2.encode(" y")];
    expect(await readExamples(file, causal(gpt2, { seqLen: n }))).toEqual([{ ids: [...x, ...y, EOS], labels: [-100, ...y, EOS] }]);
    expect(await readExamples(file, causal(gpt2, { seqLen: 2 }))).toEqual([{ ids: [...x, ...y], labels: [-100, ...y] }]);
    const error = await captureLowrankRejection(readExamples(data([{ prompt, completion: " six" }]), causal(gpt2, { seqLen: n })));
    expect(error.message).toMatch(/: holds no usable example$/);
  });
});

describe("readExamples: messages (the model's chat template; loss on the assistant messages)", () => {
  const conversation = [
    { role: "system", content: "You answer in one line." },
    { role: "user", content: "What is the capital of France?" },
    { role: "assistant", content: "Paris." },
    { role: "user", content: "And of Italy?" },
    { role: "assistant", content: "Rome, since 1871." },
  ];

  test("rendered once and tokenised without adding special tokens; −100 exactly on the non-assistant tokens", async () => {
    const [example] = await readExamples(data([{ messages: conversation }]), causal(chat));
    const rendered = new ChatTemplate(CHATML, chat.specialTokens).render(conversation, { addGenerationPrompt: false });
    expect(example!.ids).toEqual(chat.encode(rendered));
    // The template's bos_token, written once; the special tokens are single ids.
    expect(example!.ids.slice(0, 2)).toEqual([EOS, IM_START]);
    const labels = example!.labels!;
    expect(trainedRuns(labels)).toEqual(["Paris.<|im_end|>\n", "Rome, since 1871.<|im_end|>\n"]);
    labels.forEach((label, t) => expect([-100, example!.ids[t]]).toContain(label));
    const untrained = example!.ids.filter((_, t) => labels[t] === -100);
    expect(raw.decode(untrained, { skip_special_tokens: false })).toBe(
      "<|endoftext|><|im_start|>system\nYou answer in one line.<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n" +
        "<|im_start|>user\nAnd of Italy?<|im_end|>\n<|im_start|>assistant\n",
    );
  });

  test("no EOS is appended (the template ends each message); cut to seqLen like the rest", async () => {
    const [full] = await readExamples(data([{ messages: conversation.slice(1, 3) }]), causal(chat));
    expect(full!.ids.at(-2)).toBe(IM_END);
    const [cut] = await readExamples(data([{ messages: conversation.slice(1, 3) }]), causal(chat, { seqLen: full!.ids.length - 3 }));
    expect(cut).toEqual({ ids: full!.ids.slice(0, -3), labels: full!.labels!.slice(0, -3) });
  });
});

describe("readExamples: bad lines are one-line LowrankErrors naming the file and line", () => {
  const good = {
    messages: [
      { role: "user", content: "a" },
      { role: "assistant", content: "b" },
    ],
  };
  test.each([
    [
      "messages, and a folder without chat_template",
      [good],
      () => causal(gpt2),
      `\`messages\` need the model's chat template, and ${GPT2_MINI} has none (\`chat_template\` in tokenizer_config.json, or chat_template.jinja)`,
    ],
    ["a message without a role", [good, { messages: [{ content: "a" }] }], () => causal(chat), "`messages[0]` needs a `role` string"],
    [
      "a message without content",
      [{ messages: [{ role: "user", content: "a" }, { role: "assistant" }] }],
      () => causal(chat),
      "`messages[1]` needs a `content` string",
    ],
    [
      "an unknown role",
      [{ messages: [{ role: "human", content: "a" }] }],
      () => causal(chat),
      '`messages[0].role` is "human", not one of system, developer, user, assistant, tool',
    ],
    [
      "no assistant message",
      [{ messages: [{ role: "user", content: "a" }] }],
      () => causal(chat),
      "the conversation has no assistant message (the loss is on assistant messages only)",
    ],
    ["messages mixed with text", [{ ...good, text: "x" }], () => causal(chat), "has `messages` and `text`; give one format per line"],
    [
      "prompt mixed with input_ids",
      [{ prompt: "a", completion: "b", input_ids: [1] }],
      () => causal(chat),
      "has `prompt`/`completion` and `input_ids`; give one format per line",
    ],
    [
      "a prompt without completion",
      [{ prompt: "a" }],
      () => causal(chat),
      "`prompt` and `completion` must both be strings (for a conversation, use `messages`)",
    ],
    [
      "conversational prompt/completion",
      [{ prompt: [{ role: "user", content: "a" }], completion: "b" }],
      () => causal(chat),
      "`prompt` and `completion` must both be strings (for a conversation, use `messages`)",
    ],
    [
      "prompt/completion for seq-cls",
      [{ prompt: "a", completion: "b", label: 1 }],
      () => ({ ...causal(chat), task: "seq-cls" as const }),
      "`prompt`/`completion` lines train causal language models; sequence classification takes `text` or `input_ids` with a `label`",
    ],
    [
      "messages for seq-cls",
      [{ ...good, label: 1 }],
      () => ({ ...causal(chat), task: "seq-cls" as const }),
      "`messages` lines train causal language models; sequence classification takes `text` or `input_ids` with a `label`",
    ],
    ["a line that is not an object", ["[1, 2]"], () => causal(chat), "must be a JSON object"],
    [
      "a line with none of the formats",
      [{ txt: "a" }],
      () => causal(chat),
      "needs a `text` string, an `input_ids` array, `prompt` and `completion` strings, or a `messages` list",
    ],
    [
      "messages without a tokenizer",
      [good],
      () => causal(undefined),
      "`messages` need the model's tokenizer and chat template, and the model folder has no tokenizer.json",
    ],
    [
      "prompt/completion without a tokenizer",
      [{ prompt: "a", completion: "b" }],
      () => causal(undefined),
      "has text but the model folder has no tokenizer.json; give `input_ids` instead",
    ],
  ])("%s", async (_, lines, options, message) => {
    const file = data(lines);
    const error = await captureLowrankRejection(readExamples(file, options()));
    expect([error.code, error.message]).toEqual(["USAGE", `--data ${file} line ${lines.length}: ${message}`]);
    expect(error.message).not.toContain("\n");
  });
});

describe("readExamples: packing", () => {
  test("`packing` packs the causal-LM examples into sequences of seqLen, with segments and positions", async () => {
    const file = data([{ input_ids: [1, 2, 3] }, { prompt: "a", completion: " b" }, { input_ids: [4, 5] }]);
    const unpacked = await readExamples(file, causal(gpt2));
    // Lengths 3, 3 (a, " b", EOS) and 2: the third fits both sequences' room of 2, and goes to the older one.
    const packed = (await readExamples(file, causal(gpt2, { packing: true, seqLen: 5 }))) as PackedExample[];
    expect(packed.map((p) => p.sources)).toEqual([[0, 2], [1]]);
    const [first] = packed;
    expect(first).toMatchObject({ ids: [1, 2, 3, 4, 5], labels: [-100, 2, 3, -100, 5], segments: [0, 0, 0, 1, 1], positions: [0, 1, 2, 0, 1] });
    expect(packed[1]!.labels).toEqual(unpacked[1]!.labels);
    const examples: TrainingExample[] = packed;
    expect(examples.reduce((n, e) => n + e.ids.length, 0)).toBe(unpacked.reduce((n, e) => n + e.ids.length, 0));
  });
});
