import { describe, expect, test } from "vitest";
import type { LoraConfig } from "@lowrank/core";
import { modelCard } from "@lowrank/hub";
import { frontMatter, validateCard, yamlProblem } from "./yaml-front-matter.js";

// Every case was checked against PyYAML (safe_load): the valid ones load, the invalid ones fail,
// except duplicated keys, which PyYAML keeps (last wins) but JavaScript YAML parsers refuse.
describe("YAML blocks that are valid", () => {
  test.each([
    [
      "the card lowrank pushes",
      'library_name: peft\nbase_model: gpt2\npipeline_tag: text-generation\ntags:\n- peft\n- lora\n- "base_model:adapter:gpt2"\n',
      "mapping",
    ],
    [
      "nested lists and mappings",
      "model-index:\n- name: m\n  results:\n  - task:\n      type: text-generation\n    metrics:\n    - type: acc\n      value: 0.5\n",
      "mapping",
    ],
    ["indented lists", "tags:\n  - a\n  - b\nlicense: mit\n", "mapping"],
    ["compact nested nodes", "- a: 1\n  b: 2\n- - x\n  - y\n", "list"],
    ["block scalars", "a: |\n  line1\n\n  line2: with colon\nb: >-\n  folded\n  text\nc: |+\n  keep\n\nd: |2\n    indented\n", "mapping"],
    ["flow collections over lines", "a: [1, 2, {b: c}]\nb: [\n  1,\n  2,\n]\nk:\n  - [a, b]\n  - {c: d}\n", "mapping"],
    ["quoted strings", "a: 'it''s'\nb: \"esc \\\" q\"\nc: \"multi\n  line\"\n\"quoted key\": v\n'single': v\nd: 'x' # comment\n", "mapping"],
    ["plain scalars with colons, commas, hashes", "a: http://example.com/x\nb: time 12:30\nc: x,y\nd: C#\ne: 1 # c: x\nf: -1\ng: -x\n", "mapping"],
    ["multi-line plain values", "a: this is\n  continued\n  more\nb: c\n", "mapping"],
    ["anchors, aliases and tags", "a: &anc\n  b: 1\nc: *anc\nd: !!str 123\n", "mapping"],
    ["comments and blank lines", "# top\na: b\n\n  # indented comment\nc: d # trailing\n", "mapping"],
    ["a Space card with emoji", "title: My Space 🚀\nemoji: 🤗\nsdk: gradio\npinned: false\n", "mapping"],
    ["a tab inside a block scalar", "a: |\n  x\n  \tb\n", "mapping"],
    ["nothing", "", "empty"],
    ["only a comment", "# nothing here\n", "empty"],
    ["a list", "- a\n- b\n", "list"],
  ])("%s", (_what, yaml, kind) => {
    expect(yamlProblem(yaml)).toEqual({ kind });
  });
});

describe("YAML blocks with a syntax error (line numbers count from the block's first line)", () => {
  test.each([
    ["an unclosed flow list", "license: [mit\n", /^line 1: the flow collection opened with "\[" is not closed$/],
    ["mismatched brackets", "a: {b: [c, d}\n", /^line 1: "}" does not close/],
    ["text after a flow list", "a: [x] trailing\n", /^line 1: unexpected text after the flow collection/],
    ["an extra bracket", "a: [a]]\n", /^line 1: unexpected text after the flow collection/],
    ['a value with ": "', "a: b: c\n", /^line 1: a plain value cannot contain ": "/],
    ["a key indented under a value", "license: mit\n  extra: x\n", /^line 2: a plain value cannot contain ": "/],
    ['a continuation with ": "', "a: this is\n  continued: bad\n", /^line 2: /],
    ["a dedented key", "a:\n  b: 1\n c: 2\n", /^line 3: bad indentation of a mapping entry$/],
    ["a key after a nested list at the wrong depth", "a:\n    - x\n    - y\n  b: c\n", /^line 4: bad indentation/],
    ["a list item after a value", "a: b\n- c\n", /^line 2: a list item/],
    ["a list item on the key's line", "a: - b\n", /^line 1: a list item \("- "\) cannot start on the line of its key/],
    ["a mapping after a root list", "- a\nb: c\n", /^line 2: unexpected content/],
    ["a line that is no key", "a: 1\nb\n", /^line 2: expected a "key: value" line$/],
    ["text after a quoted string", "a: 'x'y\n", /^line 1: unexpected text after the quoted string/],
    ["a key after a quoted value", 'a: "x": y\n', /^line 1: a "key: value" on the same line as a value/],
    ["an unclosed quote", 'a: "unterminated\nb: c\n', /^line 1: a quoted string is not closed$/],
    ["a bad block scalar header", "a: |x\n  t\n", /^line 1: bad block scalar header/],
    ["a tab as indentation", "a: b\n\tc: d\n", /^line 2: a tab is used for indentation/],
    ["reserved characters", "a: @x\n", /^line 1: a plain value cannot start with "@"/],
    ["a closing bracket as a value", "a: ]\n", /^line 1: a plain value cannot start with "\]"/],
    ["a duplicated key", "a: b\nc: d\na: e\n", /^line 3: the key a appears twice in one mapping$/],
    ["an alias with no anchor", "a: &x 1\nb: *y\n", /^line 2: the alias \*y names no anchor/],
  ])("%s", (_what, yaml, pattern) => {
    expect(yamlProblem(yaml).problem).toMatch(pattern);
    expect(yamlProblem(yaml, 4).problem).toMatch(/^line \d+:/);
  });

  test("constructs the checker does not read are accepted, not guessed at", () => {
    expect(yamlProblem("? a\n: b\n")).toEqual({});
    expect(yamlProblem("[a, b]: c\n")).toEqual({});
    expect(yamlProblem("x: y\n...\n")).toEqual({});
  });
});

describe("cards", () => {
  test("the metadata block is found as huggingface_hub finds it, with its first line", () => {
    expect(frontMatter("---\na: b\n---\n# title")).toEqual({ yaml: "a: b", firstLine: 1 });
    expect(frontMatter("\n---\r\n\r\na: b\r\n---")).toEqual({ yaml: "a: b", firstLine: 3 });
    expect(frontMatter("# no metadata\n---\na: b\n---\n")).toBeUndefined();
  });

  test.each([
    ["valid metadata", "---\nlicense: mit\n---\n# card\n", { errors: [], warnings: [] }],
    ["no metadata", "# card\n", { errors: [], warnings: [expect.stringMatching(/^Empty or missing yaml metadata in repo card/)] }],
    ["an empty block", "---\n# nothing\n---\n", { errors: [], warnings: [expect.stringMatching(/^Empty or missing yaml metadata/)] }],
    ["null", "---\nnull\n---\n", { errors: [], warnings: [expect.stringMatching(/^Empty or missing yaml metadata/)] }],
    [
      "a syntax error (line counted in README.md)",
      "---\nlicense: mit\ntags: [a\n---\n",
      { errors: ['Invalid YAML metadata in README.md, line 3: the flow collection opened with "[" is not closed'], warnings: [] },
    ],
    ["a list", "---\n- a\n---\n", { errors: [expect.stringMatching(/must be a mapping of keys to values .*not a list/)], warnings: [] }],
    ["a single value", "---\njust text\n---\n", { errors: [expect.stringMatching(/not a single value/)], warnings: [] }],
  ])("%s", (_what, card, expected) => {
    expect(validateCard(card, "model")).toEqual(expected);
  });
});

test.each(["gpt2", "org/base.v2", "/tmp/local/gpt2", undefined])("the model card lowrank pushes (base %j) validates", (base) => {
  const config = {
    peft_type: "LORA",
    r: 8,
    lora_alpha: 16,
    lora_dropout: 0.05,
    use_rslora: false,
    use_dora: true,
    target_modules: ["q_proj", "v_proj"],
    task_type: "CAUSAL_LM",
    base_model_name_or_path: base,
  } as unknown as LoraConfig;
  const card = modelCard({ repo: "team/adapter", config, summary: { steps: 10, final_loss: 1.25, seed: 1 } });
  expect(validateCard(card, "model")).toEqual({ errors: [], warnings: [] });
});
