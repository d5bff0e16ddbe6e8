import { describe, expect, test } from "vitest";
import { captureLowrankError } from "../testing/capture-error.js";
import { ChatTemplate } from "./chat-template.js";

const CHATML =
  "{{ bos_token }}{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

describe("ChatTemplate", () => {
  const chatml = new ChatTemplate(CHATML, { bos_token: "<s>", eos_token: "<|im_end|>" });
  const messages = [
    { role: "user", content: "Hi" },
    { role: "assistant", content: "Hello!" },
  ];

  test("renders as apply_chat_template: special tokens' texts, add_generation_prompt", () => {
    expect(chatml.render(messages, { addGenerationPrompt: false })).toBe("<s><|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n");
    expect(chatml.render(messages.slice(0, 1), { addGenerationPrompt: true })).toBe("<s><|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    expect(chatml.render([], { addGenerationPrompt: false })).toBe("<s>");
  });

  test("trim_blocks and lstrip_blocks, as transformers' Jinja environment; tools and documents are none", () => {
    const template = new ChatTemplate(
      "{% for m in messages %}\n  {% if m.role == 'user' %}\n[{{ m.content }}]\n  {% endif %}\n{% endfor %}{% if tools is none and documents is none %}.{% endif %}",
    );
    expect(template.render(messages, { addGenerationPrompt: false })).toBe("[Hi]\n.");
  });

  test("a template that does not parse, or that raises, is a one-line LowrankError naming it", () => {
    const parse = captureLowrankError(() => new ChatTemplate("{% if %}", {}, "models/x chat_template"));
    expect([parse.code, parse.message]).toEqual([
      "CHECKPOINT_INVALID",
      "models/x chat_template: the chat template does not parse (Unexpected token: CloseStatement)",
    ]);
    const raising = new ChatTemplate("{% if messages[0]['role'] != 'user' %}{{ raise_exception('Conversations must start with the user') }}{% endif %}");
    const error = captureLowrankError(() => raising.render([{ role: "assistant", content: "x" }], { addGenerationPrompt: false, where: "--data f line 3" }));
    expect([error.code, error.message]).toEqual(["USAGE", "--data f line 3: the chat template failed (Conversations must start with the user)"]);
  });
});
