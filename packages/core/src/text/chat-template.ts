import { Template } from "@huggingface/jinja";
import { LowrankError } from "../errors/lowrank-error.js";

/** One message of a conversation, as chat templates take it. */
export interface ChatMessage {
  role: string;
  content: string;
}

/**
 * A model's chat template, compiled once, rendered as transformers' `apply_chat_template` renders
 * it: the template gets `messages`, `add_generation_prompt`, `tools` and `documents` (none), and the
 * special tokens' texts of tokenizer_config.json (`bos_token`, `eos_token`, …); Jinja runs with
 * trim_blocks and lstrip_blocks, through @huggingface/jinja.
 */
export class ChatTemplate {
  private readonly template: Template;

  /**
   * @param source the Jinja text (`chat_template` of tokenizer_config.json or chat_template.jinja).
   * @param specialTokens the special tokens' texts the template may use.
   * @param label names the template in messages (e.g. the model folder).
   * @throws LowrankError CHECKPOINT_INVALID when the template does not parse.
   */
  constructor(
    source: string,
    private readonly specialTokens: Readonly<Record<string, string | readonly string[]>> = {},
    private readonly label = "the chat template",
  ) {
    try {
      this.template = new Template(source);
    } catch (error) {
      throw new LowrankError("CHECKPOINT_INVALID", `${label}: the chat template does not parse (${firstLine(error)})`);
    }
  }

  /**
   * @param options.where names the conversation in messages (the data file and line).
   * @returns the conversation as text, special tokens written out (tokenise it without adding them again).
   * @throws LowrankError USAGE when the template fails on these messages (its `raise_exception`, say).
   */
  render(messages: readonly ChatMessage[], options: { addGenerationPrompt: boolean; where?: string }): string {
    try {
      return this.template.render({
        ...this.specialTokens,
        messages: messages.map((m) => ({ ...m })),
        add_generation_prompt: options.addGenerationPrompt,
        tools: null,
        documents: null,
      });
    } catch (error) {
      throw new LowrankError("USAGE", `${options.where ?? this.label}: the chat template failed (${firstLine(error)})`);
    }
  }
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split("\n")[0] ?? "";
}
