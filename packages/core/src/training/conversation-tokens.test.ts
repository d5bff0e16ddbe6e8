import { describe, expect, test } from "vitest";
import { ChatTemplate } from "../text/chat-template.js";
import { captureLowrankError } from "../testing/capture-error.js";
import { conversationTokens, parseMessages } from "./conversation-tokens.js";

/** One token per character: spans are easy to read back. */
const encode = (text: string): number[] => Array.from(text, (c) => c.codePointAt(0)!);
const decode = (ids: readonly number[]): string => String.fromCodePoint(...ids);

const CHATML =
  "{% for message in messages %}{{ '<' + message['role'] + '>' + message['content'] + eos_token }}{% endfor %}{% if add_generation_prompt %}{{ '<assistant>' }}{% endif %}";
const template = new ChatTemplate(CHATML, { eos_token: "|" });

/** The trained runs of a row of labels, decoded. */
function trainedRuns(labels: readonly number[]): string[] {
  const runs: string[] = [];
  let run: number[] = [];
  for (const label of [...labels, -100]) {
    if (label >= 0) run.push(label);
    else if (run.length > 0) {
      runs.push(decode(run));
      run = [];
    }
  }
  return runs;
}

describe("parseMessages", () => {
  const where = "--data f.jsonl line 4";
  test.each([
    ["not a list", { role: "user" }, '`messages` must be a non-empty list of {"role", "content"} objects'],
    ["an empty list", [], '`messages` must be a non-empty list of {"role", "content"} objects'],
    ["a message without a role", [{ content: "x" }], "`messages[0]` needs a `role` string"],
    ["a message that is not an object", [{ role: "user", content: "x" }, "hi"], "`messages[1]` needs a `role` string"],
    ["a message without content", [{ role: "user", content: "x" }, { role: "assistant" }], "`messages[1]` needs a `content` string"],
    ["content that is not a string", [{ role: "user", content: [{ type: "text", text: "x" }] }], "`messages[0]` needs a `content` string"],
    ["an unknown role", [{ role: "bot", content: "x" }], '`messages[0].role` is "bot", not one of system, developer, user, assistant, tool'],
    [
      "no assistant message",
      [
        { role: "system", content: "x" },
        { role: "user", content: "y" },
      ],
      "the conversation has no assistant message (the loss is on assistant messages only)",
    ],
  ])("%s is refused, naming the line", (_, raw, message) => {
    const error = captureLowrankError(() => parseMessages(raw, where));
    expect([error.code, error.message]).toEqual(["USAGE", `${where}: ${message}`]);
  });

  test("a good conversation is kept as it is (extra keys too)", () => {
    const messages = [
      { role: "user", content: "a", name: "n" },
      { role: "assistant", content: "b" },
    ];
    expect(parseMessages(messages, "w")).toEqual(messages);
  });
});

describe("conversationTokens", () => {
  test("the loss is on each assistant message's content and the template's end of it, nowhere else", () => {
    const messages = [
      { role: "system", content: "Be brief." },
      { role: "user", content: "Hi" },
      { role: "assistant", content: "Hello" },
      { role: "user", content: "Bye" },
      { role: "assistant", content: "Ciao" },
    ];
    const { ids, labels } = conversationTokens(messages, { template, encode, where: "w" });
    expect(decode(ids)).toBe("<system>Be brief.|<user>Hi|<assistant>Hello|<user>Bye|<assistant>Ciao|");
    expect(labels).toHaveLength(ids.length);
    expect(trainedRuns(labels)).toEqual(["Hello|", "Ciao|"]);
    // Every token is either trained with its own id, or −100.
    labels.forEach((label, t) => expect([-100, ids[t]]).toContain(label));
    expect(decode(ids.filter((_, t) => labels[t] === -100))).toBe("<system>Be brief.|<user>Hi|<assistant><user>Bye|<assistant>");
  });

  test("a conversation that starts with the assistant, and an empty assistant message (its end is still trained)", () => {
    const { labels } = conversationTokens(
      [
        { role: "assistant", content: "Hi!" },
        { role: "user", content: "?" },
        { role: "assistant", content: "" },
      ],
      { template, encode, where: "w" },
    );
    expect(trainedRuns(labels)).toEqual(["Hi!|", "|"]);
  });

  test("a token that straddles the start of an assistant message is trained; one that straddles its end is not", () => {
    // Pairs of characters become one token when they are "a" followed by anything.
    const pairing = (text: string): number[] => {
      const ids: number[] = [];
      for (let i = 0; i < text.length; i++) ids.push(text[i] === "a" && i + 1 < text.length ? 1000 + text.charCodeAt(++i) : text.charCodeAt(i));
      return ids;
    };
    const plain = new ChatTemplate("{% for m in messages %}{{ m.content }}{% endfor %}");
    const { ids, labels } = conversationTokens(
      [
        { role: "user", content: "xa" },
        { role: "assistant", content: "bca" },
        { role: "user", content: "d" },
      ],
      { template: plain, encode: pairing, where: "w" },
    );
    // "xa|bca|d" → x, (ab), c, (ad): (ab) straddles the start, (ad) the end.
    expect(ids).toEqual([120, 1098, 99, 1100]);
    expect(labels).toEqual([-100, 1098, 99, -100]);
  });

  test("a template that renders earlier messages differently once more follow is refused", () => {
    // Drops the content of every assistant message but the last (as some reasoning templates do).
    const lastOnly = new ChatTemplate("{% for m in messages %}{{ m.role }}:{% if m.role != 'assistant' or loop.last %}{{ m.content }}{% endif %};{% endfor %}");
    const error = captureLowrankError(() =>
      conversationTokens(
        [
          { role: "user", content: "a" },
          { role: "assistant", content: "b" },
          { role: "user", content: "c" },
          { role: "assistant", content: "d" },
        ],
        { template: lastOnly, encode, where: "--data f line 2" },
      ),
    );
    expect([error.code, error.message]).toEqual([
      "USAGE",
      "--data f line 2: the chat template does not render `messages[1]` as a continuation of the messages before it, so its tokens cannot be found for the loss",
    ]);
  });
});
