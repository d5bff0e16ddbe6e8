import { LowrankError } from "../errors/lowrank-error.js";
import type { ChatMessage, ChatTemplate } from "../text/chat-template.js";

/** The roles a `messages` line may use. */
export const CHAT_ROLES: readonly string[] = ["system", "developer", "user", "assistant", "tool"];

/**
 * Checks a JSONL line's `messages`: a non-empty list of `{role, content}` with string contents, known
 * roles and at least one assistant message (what the loss is on). Other keys of a message are kept.
 * @param where names the line in messages (`--data FILE line N`).
 * @throws LowrankError USAGE naming the line and the message.
 */
export function parseMessages(raw: unknown, where: string): ChatMessage[] {
  if (!Array.isArray(raw) || raw.length === 0)
    throw new LowrankError("USAGE", `${where}: \`messages\` must be a non-empty list of {"role", "content"} objects`);
  const messages = raw.map((m: unknown, i): ChatMessage => {
    const message = (m && typeof m === "object" ? m : {}) as { role?: unknown; content?: unknown };
    if (typeof message.role !== "string") throw new LowrankError("USAGE", `${where}: \`messages[${i}]\` needs a \`role\` string`);
    if (typeof message.content !== "string") throw new LowrankError("USAGE", `${where}: \`messages[${i}]\` needs a \`content\` string`);
    if (!CHAT_ROLES.includes(message.role))
      throw new LowrankError("USAGE", `${where}: \`messages[${i}].role\` is ${JSON.stringify(message.role)}, not one of ${CHAT_ROLES.join(", ")}`);
    return message as ChatMessage;
  });
  if (!messages.some((m) => m.role === "assistant"))
    throw new LowrankError("USAGE", `${where}: the conversation has no assistant message (the loss is on assistant messages only)`);
  return messages;
}

/** How many leading tokens `a` shares with `b`. */
function sharedPrefix(a: readonly number[], b: readonly number[]): number {
  let n = 0;
  while (n < a.length && n < b.length && a[n] === b[n]) n++;
  return n;
}

/**
 * A conversation's tokens and labels, with the loss on the assistant messages only (TRL's
 * `assistant_only_loss`): the whole conversation is rendered with the chat template
 * (`add_generation_prompt` false) and tokenised without adding special tokens; then, for each
 * assistant message, the conversation before it is rendered with `add_generation_prompt` true (the
 * text up to its content) and the conversation through it (up to and with the template's end of that
 * message), and the tokens between the two are labelled with their ids. Every other token (system and
 * user turns, role headers) is labelled −100. A token that straddles the start of an assistant
 * message is trained; one that straddles its end is not.
 * @param options.encode tokenises without adding special tokens (the template writes them).
 * @param options.where names the line in messages.
 * @throws LowrankError USAGE when the template fails, or does not render a conversation's first
 * messages as the start of the whole (then the assistant tokens cannot be found).
 */
export function conversationTokens(
  messages: readonly ChatMessage[],
  options: { template: ChatTemplate; encode: (text: string) => number[]; where: string },
): { ids: number[]; labels: number[] } {
  const { template, encode, where } = options;
  const full = template.render(messages, { addGenerationPrompt: false, where });
  const ids = encode(full);
  const labels = new Array<number>(ids.length).fill(-100);
  messages.forEach((message, i) => {
    if (message.role !== "assistant") return;
    const before = template.render(messages.slice(0, i), { addGenerationPrompt: true, where });
    const through = template.render(messages.slice(0, i + 1), { addGenerationPrompt: false, where });
    if (!through.startsWith(before) || !full.startsWith(through))
      throw new LowrankError(
        "USAGE",
        `${where}: the chat template does not render \`messages[${i}]\` as a continuation of the messages before it, so its tokens cannot be found for the loss`,
      );
    const start = sharedPrefix(encode(before), ids);
    const end = sharedPrefix(encode(through), ids);
    for (let t = start; t < end; t++) labels[t] = ids[t]!;
  });
  return { ids, labels };
}
