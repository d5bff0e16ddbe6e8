/**
 * The YAML metadata block of a repo card (README.md) and the syntax errors in it, for
 * `/api/validate-yaml`. This is a checker, not a YAML parser: it reads block mappings and lists,
 * plain, quoted and block scalars, flow collections, comments, anchors, aliases and tags, and
 * reports a problem only where a YAML parser (js-yaml, which rejects duplicate keys, or PyYAML)
 * would fail. Constructs it does not read (explicit `?` keys, directives, several documents, keys
 * with anchors or tags) make it accept the block rather than guess.
 */

/** The metadata block as huggingface_hub finds it (its `REGEX_YAML_BLOCK`, "exact same regex as in the Hub server"). */
const FRONT_MATTER = /^(\s*---[\r\n]+)([\S\s]*?)([\r\n]+---(\r\n|\n|$))/;

/** The YAML text between the `---` fences of a card and the README line it starts on (0-based), or undefined without one. */
export function frontMatter(content: string): { yaml: string; firstLine: number } | undefined {
  const match = FRONT_MATTER.exec(content);
  if (!match) return undefined;
  return { yaml: match[2]!, firstLine: match[1]!.split(/\r\n|\r|\n/).length - 1 };
}

/** A construct the checker does not read: the block is accepted as it is. */
class Unsupported extends Error {}

/** A syntax error at a line of the YAML block (0-based). */
class Problem extends Error {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(message);
  }
}

interface Line {
  line: number;
  indent: number;
  /** The line after its indentation, trailing spaces removed, comments kept. */
  text: string;
  /** A tab in the indentation (an error on a line the structure is read from). */
  tab?: boolean;
}

const isListItem = (text: string) => text === "-" || /^-[ \t]/.test(text);

/** Index of the quote closing the one at `start` (`''` escapes in single quotes, `\` in double), or -1. */
function closingQuote(text: string, start: number): number {
  const quote = text[start];
  for (let j = start + 1; j < text.length; j++) {
    if (quote === '"' && text[j] === "\\") j++;
    else if (text[j] === quote) {
      if (quote === "'" && text[j + 1] === "'") j++;
      else return j;
    }
  }
  return -1;
}

/** `text` without a trailing comment (a `#` at the start or after white space), for plain content. */
const withoutComment = (text: string) => text.replace(/(^|[ \t])#.*$/, "").trimEnd();

/** Where the flow collection opening at 0 closes: its index, "open" when more lines are needed, or an error. */
function flowEnd(text: string): number | "open" | { error: string } {
  const stack: string[] = [];
  let scalarStart = true;
  for (let j = 0; j < text.length; j++) {
    const c = text[j]!;
    if (c === "#" && (j === 0 || /\s/.test(text[j - 1]!))) {
      const eol = text.indexOf("\n", j);
      if (eol < 0) return "open";
      j = eol;
      continue;
    }
    if ((c === '"' || c === "'") && scalarStart) {
      const end = closingQuote(text, j);
      if (end < 0) return "open";
      j = end;
      scalarStart = false;
      continue;
    }
    if (c === "[" || c === "{") stack.push(c === "[" ? "]" : "}");
    else if (c === "]" || c === "}") {
      if (stack.pop() !== c) return { error: `"${c}" does not close the flow collection it ends (check the brackets)` };
      if (stack.length === 0) return j;
    }
    scalarStart = c === "[" || c === "{" || c === "," || c === ":" || /\s/.test(c);
  }
  return "open";
}

/** Reads one YAML block; `check` throws a Problem at the first syntax error. */
class BlockChecker {
  private i = 0;
  private readonly lines: Array<Line | undefined>;
  /** Anchors defined so far (`&name`): an alias may only name one of them. */
  private readonly anchors = new Set<string>();

  constructor(private readonly raw: string[]) {
    this.lines = raw.map((text, line) => {
      const content = text.replace(/^[ \t]+/, "");
      if (content.trim() === "") return undefined;
      return { line, indent: /^ */.exec(text)![0].length, text: content.trimEnd(), tab: /^ *\t/.test(text) };
    });
  }

  /** What the block holds: "empty", "mapping", "list" or "scalar". */
  check(): "empty" | "mapping" | "list" | "scalar" {
    const first = this.peek();
    if (!first) return "empty";
    const kind = this.node(first.indent, -1);
    const rest = this.peek();
    if (rest) throw new Problem(rest.line, "unexpected content here (check the indentation)");
    return kind;
  }

  /** The next line with content that is not only a comment (not consumed). */
  private peek(): Line | undefined {
    while (this.i < this.lines.length) {
      const line = this.lines[this.i];
      if (line && !line.text.startsWith("#")) {
        if (line.tab) throw new Problem(line.line, "a tab is used for indentation (YAML allows spaces only)");
        if (line.text === "..." || line.text === "---" || line.text.startsWith("%")) throw new Unsupported();
        return line;
      }
      this.i++;
    }
    return undefined;
  }

  /** A mapping key at the start of `text` and what follows its colon, or undefined when `text` is no key. */
  private key(text: string): { key: string; rest: string } | undefined {
    if (/^\?([ \t]|$)/.test(text)) throw new Unsupported();
    if (text[0] === '"' || text[0] === "'") {
      const end = closingQuote(text, 0);
      const colon = end < 0 ? null : /^[ \t]*:([ \t]|$)/.exec(text.slice(end + 1));
      return colon ? { key: text.slice(0, end + 1), rest: text.slice(end + 1 + colon[0].length).trim() } : undefined;
    }
    if (text[0] === "[" || text[0] === "{") {
      // A flow collection as a value; as a key ("[a, b]: c") it is not read.
      const end = flowEnd(text);
      if (typeof end === "number" && /^[ \t]*:([ \t]|$)/.test(text.slice(end + 1))) throw new Unsupported();
      return undefined;
    }
    const plain = withoutComment(text);
    const colon = /:([ \t]|$)/.exec(plain);
    if (!colon) return undefined;
    if (/^[&!*|>@`%]/.test(text)) throw new Unsupported();
    const key = plain.slice(0, colon.index).trimEnd();
    if (key === "") throw new Unsupported();
    return { key, rest: text.slice(colon.index + colon[0].length).trim() };
  }

  /** A block node whose first line is the next one, at `indent`; `parent` is the enclosing indentation. */
  private node(indent: number, parent: number): "mapping" | "list" | "scalar" {
    const line = this.peek()!;
    if (isListItem(line.text)) {
      this.list(indent);
      return "list";
    }
    if (this.key(line.text)) {
      this.mapping(indent);
      return "mapping";
    }
    this.i++;
    this.value(line.text, parent, line.line, false);
    return "scalar";
  }

  private mapping(indent: number): void {
    const keys = new Set<string>();
    for (let line = this.peek(); line && line.indent >= indent; line = this.peek()) {
      if (line.indent > indent) throw new Problem(line.line, "bad indentation of a mapping entry");
      if (isListItem(line.text)) throw new Problem(line.line, 'a list item ("- ") where a "key: value" line was expected (check the indentation)');
      const entry = this.key(line.text);
      if (!entry) throw new Problem(line.line, 'expected a "key: value" line');
      if (keys.has(entry.key)) throw new Problem(line.line, `the key ${entry.key} appears twice in one mapping`);
      keys.add(entry.key);
      this.i++;
      this.value(entry.rest, indent, line.line, true);
    }
  }

  private list(indent: number): void {
    for (let line = this.peek(); line && line.indent >= indent; line = this.peek()) {
      if (line.indent > indent) throw new Problem(line.line, "bad indentation of a list item");
      if (!isListItem(line.text)) return;
      const rest = line.text.slice(1).replace(/^[ \t]+/, "");
      if (rest !== "" && !rest.startsWith("#") && (isListItem(rest) || this.key(rest))) {
        // A compact nested node ("- key: value", "- - x"): it continues at the column it starts at.
        const column = line.indent + line.text.length - rest.length;
        this.lines[this.i] = { line: line.line, indent: column, text: rest };
        this.node(column, indent);
      } else {
        this.i++;
        this.value(rest, indent, line.line, false);
      }
    }
  }

  /**
   * The value after `key:` or `- ` (already consumed, on `lineNo`), including what it continues on
   * the next lines. `parent` is the indentation of the key or list item: nested blocks and
   * continuation lines are indented further. A list may also start at the key's own indentation.
   */
  private value(text: string, parent: number, lineNo: number, listAtSameIndent: boolean): void {
    let t = text;
    while (/^[&!]/.test(t)) {
      if (t[0] === "&") this.anchors.add(/^&(\S*)/.exec(t)![1]!);
      t = t.replace(/^[&!]\S*[ \t]*/, "");
    }
    if (t === "" || t.startsWith("#")) {
      const next = this.peek();
      if (next && next.indent > parent) this.node(next.indent, parent);
      else if (next && listAtSameIndent && next.indent === parent && isListItem(next.text)) this.list(parent);
      return;
    }
    if (t.startsWith("*")) {
      const alias = /^\*([^\s,[\]{}]+)$/.exec(withoutComment(t));
      if (!alias) throw new Problem(lineNo, "an alias (*name) must stand alone");
      if (!this.anchors.has(alias[1]!)) throw new Problem(lineNo, `the alias *${alias[1]} names no anchor (&${alias[1]}) defined before it`);
      return;
    }
    if (t[0] === "|" || t[0] === ">") {
      if (!/^[|>]([1-9][+-]?|[+-][1-9]?)?$/.test(withoutComment(t))) throw new Problem(lineNo, `bad block scalar header ${JSON.stringify(t)}`);
      while (this.i < this.raw.length && (this.raw[this.i]!.trim() === "" || /^ */.exec(this.raw[this.i]!)![0].length > parent)) this.i++;
      return;
    }
    if (t[0] === '"' || t[0] === "'" || t[0] === "[" || t[0] === "{") {
      this.flowValue(t, lineNo);
      return;
    }
    this.plainValue(t, parent, lineNo);
  }

  /** A quoted scalar or a flow collection, possibly over several lines; nothing but a comment may follow it. */
  private flowValue(first: string, lineNo: number): void {
    const quoted = first[0] === '"' || first[0] === "'";
    let text = first;
    for (;;) {
      const end = quoted ? closingQuote(text, 0) : flowEnd(text);
      if (typeof end === "object") throw new Problem(lineNo, end.error);
      if (end !== -1 && end !== "open") {
        const after = text.slice(end + 1);
        const tail = after.slice(after.lastIndexOf("\n") + 1).trim();
        if (tail !== "" && !tail.startsWith("#")) {
          throw new Problem(
            lineNo,
            /^:([ \t]|$)/.test(tail)
              ? 'a "key: value" on the same line as a value (mapping values are not allowed here)'
              : `unexpected text after the ${quoted ? "quoted string" : "flow collection"}: ${JSON.stringify(tail.slice(0, 40))}`,
          );
        }
        return;
      }
      if (this.i >= this.raw.length) {
        throw new Problem(lineNo, quoted ? "a quoted string is not closed" : `the flow collection opened with "${first[0]}" is not closed`);
      }
      text += `\n${this.raw[this.i++]}`;
    }
  }

  /** A plain scalar and its continuation lines (indented further than `parent`). */
  private plainValue(first: string, parent: number, lineNo: number): void {
    const check = (text: string, line: number) => {
      const plain = withoutComment(text);
      if (/:([ \t]|$)/.test(plain))
        throw new Problem(line, 'a plain value cannot contain ": " (mapping values are not allowed here): quote it, or check the indentation');
    };
    if (/^-([ \t]|$)/.test(first)) throw new Problem(lineNo, 'a list item ("- ") cannot start on the line of its key: put it on the next line');
    if (/^[@`\]},]/.test(first)) throw new Problem(lineNo, `a plain value cannot start with "${first[0]}": quote it`);
    check(first, lineNo);
    for (let line = this.peek(); line && line.indent > parent; line = this.peek()) {
      check(line.text, line.line);
      this.i++;
    }
  }
}

/**
 * The first syntax error of a YAML block as "line N: what" (N counted in the README, from
 * `firstLine`), the block's kind, or undefined for a problem when there is none.
 */
export function yamlProblem(yaml: string, firstLine = 0): { problem?: string; kind?: "empty" | "mapping" | "list" | "scalar" } {
  try {
    return { kind: new BlockChecker(yaml.split(/\r\n|\r|\n/)).check() };
  } catch (error) {
    if (error instanceof Unsupported) return {};
    if (error instanceof Problem) return { problem: `line ${error.line + firstLine + 1}: ${error.message}` };
    throw error;
  }
}

/** Where the Hub documents card metadata, per repo type. */
const METADATA_DOCS: Record<string, string> = {
  model: "https://huggingface.co/docs/hub/model-cards#model-card-metadata",
  dataset: "https://huggingface.co/docs/hub/datasets-cards",
  space: "https://huggingface.co/docs/hub/spaces-config-reference",
};

/**
 * What `/api/validate-yaml` answers for a card: `errors` (the request is refused with them) and
 * `warnings` (shown, accepted), as message strings. A card without metadata only gets a warning,
 * as on the Hub; metadata that is not valid YAML, or not a mapping of keys to values, is an error.
 */
export function validateCard(content: string, repoType: string): { errors: string[]; warnings: string[] } {
  const block = frontMatter(content);
  const docs = METADATA_DOCS[repoType] ?? METADATA_DOCS.model;
  if (!block) return { errors: [], warnings: [`Empty or missing yaml metadata in repo card (${docs})`] };
  const { problem, kind } = yamlProblem(block.yaml, block.firstLine);
  if (problem) return { errors: [`Invalid YAML metadata in README.md, ${problem}`], warnings: [] };
  if (kind === "empty" || (kind === "scalar" && /^(null|Null|NULL|~)$/.test(block.yaml.replace(/(^|\s)#.*$/gm, "").trim())))
    return { errors: [], warnings: [`Empty or missing yaml metadata in repo card (${docs})`] };
  if (kind === "list" || kind === "scalar") {
    return {
      errors: [
        `The YAML metadata of README.md must be a mapping of keys to values ("key: value" lines), not a ${kind === "list" ? "list" : "single value"} (${docs})`,
      ],
      warnings: [],
    };
  }
  return { errors: [], warnings: [] };
}
