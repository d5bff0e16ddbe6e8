import { torchFormatError } from "./torch-format-error.js";
import { describeOpcode } from "./pickle-opcodes.js";
import { loadPersistentId, reduceGlobal, resolveGlobal } from "./torch-globals.js";
import { depthOf, describeValue, PickleDict, PickleList, PickleTuple, type PickleValue } from "./pickle-values.js";

const MAX_STACK = 1 << 20;
const MAX_MEMO = 1 << 20;
const MAX_MARK_DEPTH = 256;
const MAX_NESTING = 64;
const MAX_GLOBAL_LINE = 256;

type Handler = (m: PickleMachine) => void;

/** The opcode interpreter. State is exposed to the handler table below; nothing here can run foreign code. */
class PickleMachine {
  pos = 0;
  opStart = 0;
  op = 0;
  readonly stack: PickleValue[] = [];
  readonly marks: number[] = [];
  readonly memo = new Map<number, PickleValue>();
  private readonly view: DataView;
  private readonly utf8 = new TextDecoder("utf-8", { fatal: true });

  constructor(
    readonly bytes: Uint8Array,
    private readonly label: string,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  run(): PickleValue {
    for (;;) {
      this.opStart = this.pos;
      if (this.pos >= this.bytes.length) {
        throw torchFormatError(this.label, `pickle data.pkl ends at byte ${this.pos} without a STOP opcode (truncated?)`);
      }
      this.op = this.bytes[this.pos++]!;
      if (this.op === 0x2e) return this.pop(); // STOP
      const handler = HANDLERS.get(this.op);
      if (handler === undefined) throw this.fail("is not supported by this safe reader");
      handler(this);
    }
  }

  fail = (problem: string): Error => torchFormatError(this.label, `pickle opcode ${describeOpcode(this.op)} at byte ${this.opStart} ${problem}`);

  take(length: number): Uint8Array {
    if (length > this.bytes.length - this.pos) {
      throw this.fail(`needs ${length} bytes but data.pkl ends at byte ${this.bytes.length} (truncated?)`);
    }
    const out = this.bytes.subarray(this.pos, this.pos + length);
    this.pos += length;
    return out;
  }

  u8(): number {
    return this.take(1)[0]!;
  }
  u16(): number {
    const at = this.advance(2);
    return this.view.getUint16(at, true);
  }
  u32(): number {
    const at = this.advance(4);
    return this.view.getUint32(at, true);
  }
  i32(): number {
    const at = this.advance(4);
    return this.view.getInt32(at, true);
  }
  f64be(): number {
    const at = this.advance(8);
    return this.view.getFloat64(at, false);
  }
  u64(): number {
    const at = this.advance(8);
    const value = this.view.getBigUint64(at, true);
    if (value > BigInt(this.bytes.length)) throw this.fail(`has length ${value}, more than data.pkl holds`);
    return Number(value);
  }

  private advance(length: number): number {
    const at = this.pos;
    this.take(length);
    return at;
  }

  text(length: number): string {
    try {
      return this.utf8.decode(this.take(length));
    } catch (error) {
      if (error instanceof TypeError) throw this.fail("holds a string that is not valid UTF-8");
      throw error;
    }
  }

  line(): string {
    const end = this.bytes.indexOf(0x0a, this.pos);
    if (end < 0 || end - this.pos > MAX_GLOBAL_LINE) throw this.fail("has a name line that is unterminated or too long");
    const value = this.text(end - this.pos);
    this.pos++;
    return value;
  }

  push(value: PickleValue): void {
    if (this.stack.length >= MAX_STACK) throw this.fail(`exceeds the stack limit of ${MAX_STACK} values`);
    this.stack.push(value);
  }

  pop(): PickleValue {
    if (this.stack.length <= this.markBase()) throw this.fail("pops from an empty stack (stack underflow)");
    return this.stack.pop() as PickleValue;
  }

  top(): PickleValue {
    if (this.stack.length <= this.markBase()) throw this.fail("needs a value but the stack is empty (stack underflow)");
    return this.stack[this.stack.length - 1]!;
  }

  markBase(): number {
    return this.marks.length === 0 ? 0 : this.marks[this.marks.length - 1]!;
  }

  mark(): void {
    if (this.marks.length >= MAX_MARK_DEPTH) throw this.fail(`nests MARKs deeper than ${MAX_MARK_DEPTH}`);
    this.marks.push(this.stack.length);
  }

  popMark(): PickleValue[] {
    const base = this.marks.pop();
    if (base === undefined) throw this.fail("needs a MARK but there is none (stack underflow)");
    return this.stack.splice(base);
  }

  put(index: number): void {
    if (!this.memo.has(index) && this.memo.size >= MAX_MEMO) throw this.fail(`exceeds the memo limit of ${MAX_MEMO} entries`);
    this.memo.set(index, this.top());
  }

  get(index: number): void {
    if (!this.memo.has(index)) throw this.fail(`refers to memo entry ${index}, which was never stored`);
    this.push(this.memo.get(index) as PickleValue);
  }

  tuple(items: PickleValue[]): void {
    this.push(new PickleTuple(items, this.nested(items)));
  }

  nested(items: readonly PickleValue[], at = 1): number {
    let depth = at;
    for (const item of items) depth = Math.max(depth, depthOf(item) + 1);
    if (depth > MAX_NESTING) throw this.fail(`nests containers deeper than ${MAX_NESTING} levels`);
    return depth;
  }

  setItems(items: readonly PickleValue[]): void {
    if (items.length % 2 !== 0) throw this.fail("has an odd number of items for a dict (a key without a value)");
    const dict = this.top();
    if (!(dict instanceof PickleDict)) throw this.fail(`needs a dict to set items on, got ${describeValue(dict)}`);
    const values: PickleValue[] = [];
    for (let i = 0; i < items.length; i += 2) {
      dict.entries.set(items[i]!, items[i + 1]!);
      values.push(items[i + 1]!);
    }
    dict.depth = this.nested(values, dict.depth);
  }

  append(items: readonly PickleValue[]): void {
    const list = this.top();
    if (!(list instanceof PickleList)) throw this.fail(`needs a list to append to, got ${describeValue(list)}`);
    list.depth = this.nested(items, list.depth);
    for (const item of items) list.items.push(item);
  }

  global(module: string, name: string): void {
    this.push(resolveGlobal(module, name, this.fail));
  }

  integer(bytes: Uint8Array): number | bigint {
    let value = 0n;
    for (let i = bytes.length - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[i]!);
    if (bytes.length > 0 && bytes[bytes.length - 1]! >= 0x80) value -= 1n << BigInt(bytes.length * 8);
    return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
  }
}

const HANDLERS = new Map<number, Handler>([
  [
    0x80,
    (m) => {
      const v = m.u8();
      if (v < 2 || v > 5) throw m.fail(`declares protocol ${v} (only 2 to 5 are supported)`);
    },
  ], // PROTO
  [
    0x95,
    (m) => {
      m.u64();
    },
  ], // FRAME: frames are transparent when the whole pickle is in memory
  [0x7d, (m) => m.push(new PickleDict(false))], // EMPTY_DICT
  [0x5d, (m) => m.push(new PickleList())], // EMPTY_LIST
  [0x29, (m) => m.tuple([])], // EMPTY_TUPLE
  [0x28, (m) => m.mark()], // MARK
  [
    0x73,
    (m) => {
      const value = m.pop();
      const key = m.pop();
      m.setItems([key, value]);
    },
  ], // SETITEM
  [0x75, (m) => m.setItems(m.popMark())], // SETITEMS
  [0x61, (m) => m.append([m.pop()])], // APPEND
  [0x65, (m) => m.append(m.popMark())], // APPENDS
  [0x58, (m) => m.push(m.text(m.u32()))], // BINUNICODE
  [0x8c, (m) => m.push(m.text(m.u8()))], // SHORT_BINUNICODE
  [0x8d, (m) => m.push(m.text(m.u64()))], // BINUNICODE8
  [0x55, (m) => m.push(m.text(m.u8()))], // SHORT_BINSTRING (decoded as UTF-8, like torch.load)
  [
    0x54,
    (m) => {
      const n = m.i32();
      if (n < 0) throw m.fail(`has a negative string length ${n}`);
      m.push(m.text(n));
    },
  ], // BINSTRING
  [
    0x63,
    (m) => {
      const module = m.line();
      m.global(module, m.line());
    },
  ], // GLOBAL
  [
    0x93,
    (m) => {
      // STACK_GLOBAL
      const name = m.pop();
      const module = m.pop();
      if (typeof module !== "string" || typeof name !== "string") throw m.fail("needs a module and a name string on the stack");
      m.global(module, name);
    },
  ],
  [0x71, (m) => m.put(m.u8())], // BINPUT
  [0x72, (m) => m.put(m.u32())], // LONG_BINPUT
  [0x94, (m) => m.put(m.memo.size)], // MEMOIZE
  [0x68, (m) => m.get(m.u8())], // BINGET
  [0x6a, (m) => m.get(m.u32())], // LONG_BINGET
  [0x51, (m) => m.push(loadPersistentId(m.pop(), m.fail))], // BINPERSID
  [0x4a, (m) => m.push(m.i32())], // BININT
  [0x4b, (m) => m.push(m.u8())], // BININT1
  [0x4d, (m) => m.push(m.u16())], // BININT2
  [0x8a, (m) => m.push(m.integer(m.take(m.u8())))], // LONG1
  [0x47, (m) => m.push(m.f64be())], // BINFLOAT
  [0x4e, (m) => m.push(null)], // NONE
  [0x88, (m) => m.push(true)], // NEWTRUE
  [0x89, (m) => m.push(false)], // NEWFALSE
  [0x74, (m) => m.tuple(m.popMark())], // TUPLE
  [0x85, (m) => m.tuple([m.pop()])], // TUPLE1
  [
    0x86,
    (m) => {
      const b = m.pop();
      m.tuple([m.pop(), b]);
    },
  ], // TUPLE2
  [
    0x87,
    (m) => {
      const c = m.pop();
      const b = m.pop();
      m.tuple([m.pop(), b, c]);
    },
  ], // TUPLE3
  [
    0x52,
    (m) => {
      const args = m.pop();
      m.push(reduceGlobal(m.pop(), args, m.fail));
    },
  ], // REDUCE
  [
    0x62,
    (m) => {
      // BUILD: only dict state on a dict (OrderedDict._metadata), which is ignored
      const state = m.pop();
      const target = m.top();
      if (!(target instanceof PickleDict) || !(state === null || state instanceof PickleDict)) {
        throw m.fail(`can only set dict state on a dict, got ${describeValue(state)} state for a ${describeValue(target)}`);
      }
    },
  ],
  [
    0x64,
    (m) => {
      const items = m.popMark();
      m.push(new PickleDict(false));
      m.setItems(items);
    },
  ], // DICT
  [
    0x6c,
    (m) => {
      const items = m.popMark();
      m.push(new PickleList());
      m.append(items);
    },
  ], // LIST
]);

/**
 * Interprets a pickle (protocols 2–5) with a whitelisted subset of opcodes and globals and returns the top-level
 * value. It never imports or calls anything: allowed globals are interpreted by hand, all others are refused.
 */
export function readPickle(bytes: Uint8Array, fileLabel: string): PickleValue {
  return new PickleMachine(bytes, fileLabel).run();
}
