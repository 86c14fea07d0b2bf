/**
 * A selective JSON reader over UTF-8 bytes: the caller walks the shape it
 * expects (objects, arrays, the members it wants) and skips the rest without
 * building it, so reading a document costs its bytes plus what the caller
 * keeps, whatever the document holds (a million empty objects cost nothing).
 * Every byte, kept or skipped, is checked against the JSON grammar (RFC 8259)
 * as JSON.parse checks it, except that strings skipped unread are not checked
 * for valid UTF-8; nesting deeper than a bound is refused, so nothing here
 * recurses without limit.
 *
 * @module
 */
import { FormatError } from "../errors.ts";
import { escapeBytes } from "./text.ts";

/** What the next value is. */
export type JsonKind = "object" | "array" | "string" | "number" | "literal";

/** Bytes of the input an error shows: enough to recognise it, too few to leak a file. */
const SNIPPET = 24;
/** Longest member name returned (longer ones come as undefined, so their values are skipped). */
const MAX_KEY = 256;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Reads one JSON document from `bytes`; `what` names it in errors. */
export class JsonScanner {
  #pos = 0;
  #depth = 0;

  constructor(readonly bytes: Uint8Array, readonly what: string, readonly maxDepth = 64) {}

  /** The offset of the next byte to read. */
  get position(): number {
    return this.#pos;
  }

  /** The kind of the next value (white space skipped). */
  peek(): JsonKind {
    const b = this.#next();
    if (b === 0x7b) return "object";
    if (b === 0x5b) return "array";
    if (b === QUOTE) return "string";
    if (b === 0x2d || isDigit(b)) return "number";
    if (b === 0x74 || b === 0x66 || b === 0x6e) return "literal";
    throw this.#error();
  }

  /**
   * Reads an object: `member(name)` is called at each member's value and reads
   * or skips it (a value it leaves is skipped). Names longer than 256 bytes
   * come as undefined.
   */
  object(member: (name: string | undefined) => void): void {
    this.#open(0x7b);
    if (this.#next() === 0x7d) return this.#close();
    for (;;) {
      if (this.#next() !== QUOTE) throw this.#error();
      const name = this.string(MAX_KEY);
      this.#expect(0x3a);
      this.#visit(() => member(name));
      const b = this.#next();
      this.#pos++;
      if (b === 0x7d) return void this.#depth--;
      if (b !== 0x2c) throw this.#error(this.#pos - 1);
    }
  }

  /** Reads an array: `item(index)` is called at each element and reads or skips it. */
  array(item: (index: number) => void): void {
    this.#open(0x5b);
    if (this.#next() === 0x5d) return this.#close();
    for (let index = 0;; index++) {
      this.#visit(() => item(index));
      const b = this.#next();
      this.#pos++;
      if (b === 0x5d) return void this.#depth--;
      if (b !== 0x2c) throw this.#error(this.#pos - 1);
    }
  }

  /**
   * Reads a string, or returns undefined (having checked and passed it) when
   * its JSON text is longer than `maxBytes`.
   */
  string(maxBytes = Infinity): string | undefined {
    if (this.#next() !== QUOTE) throw this.#error();
    const start = this.#pos;
    const bytes = this.bytes;
    let escaped = false;
    let i = start + 1;
    for (;; i++) {
      if (i >= bytes.length) throw this.#error(i);
      const b = bytes[i];
      if (b === QUOTE) break;
      if (b < 0x20) throw this.#error(i);
      if (b !== BACKSLASH) continue;
      escaped = true;
      const e = bytes[++i];
      if (e === 0x75) {
        for (let k = 0; k < 4; k++) if (!isHex(bytes[++i])) throw this.#error(i);
      } else if (
        !(e === QUOTE || e === BACKSLASH || e === 0x2f || e === 0x62 || e === 0x66 || e === 0x6e ||
          e === 0x72 || e === 0x74)
      ) {
        throw this.#error(i);
      }
    }
    this.#pos = i + 1;
    if (this.#pos - start > maxBytes) return undefined;
    const body = bytes.subarray(start, this.#pos);
    let text: string;
    try {
      text = utf8.decode(escaped ? body : body.subarray(1, body.length - 1));
    } catch {
      throw new FormatError(`${this.what} is not valid UTF-8 (a string at byte ${start})`);
    }
    // The escapes are checked above; JSON.parse decodes them (and pairs surrogates) as it would in the whole.
    return escaped ? JSON.parse(text) as string : text;
  }

  /** Reads a number. */
  number(): number {
    if (this.peek() !== "number") throw this.#error();
    const start = this.#pos;
    const bytes = this.bytes;
    let i = start;
    if (bytes[i] === 0x2d) i++;
    if (bytes[i] === 0x30) i++;
    else if (isDigit(bytes[i])) { while (isDigit(bytes[i])) i++; }
    else throw this.#error(i);
    if (bytes[i] === 0x2e) {
      if (!isDigit(bytes[++i])) throw this.#error(i);
      while (isDigit(bytes[i])) i++;
    }
    if (bytes[i] === 0x65 || bytes[i] === 0x45) {
      i++;
      if (bytes[i] === 0x2b || bytes[i] === 0x2d) i++;
      if (!isDigit(bytes[i])) throw this.#error(i);
      while (isDigit(bytes[i])) i++;
    }
    this.#pos = i;
    let text = "";
    for (let k = start; k < i; k++) text += String.fromCharCode(bytes[k]);
    return Number(text);
  }

  /** Reads `true`, `false` or `null`. */
  literal(): boolean | null {
    this.#next();
    for (const [word, value] of LITERALS) {
      if (word.every((c, k) => this.bytes[this.#pos + k] === c)) {
        this.#pos += word.length;
        return value;
      }
    }
    throw this.#error();
  }

  /** Passes over one value of any kind, checking it and keeping nothing. */
  skip(): void {
    switch (this.peek()) {
      case "object":
        return this.object(() => this.skip());
      case "array":
        return this.array(() => this.skip());
      case "string":
        return void this.string(0);
      case "number":
        return void this.number();
      case "literal":
        return void this.literal();
    }
  }

  /** Checks that nothing but white space is left. */
  end(): void {
    if (this.#next() !== undefined) throw this.#error();
  }

  /** Runs `read` at a value; a value it did not read is skipped. */
  #visit(read: () => void): void {
    this.#next();
    const start = this.#pos;
    read();
    if (this.#pos === start) this.skip();
  }

  #open(bracket: number): void {
    if (this.#next() !== bracket) throw this.#error();
    if (++this.#depth > this.maxDepth) {
      throw new FormatError(`${this.what} nests deeper than ${this.maxDepth} levels (at byte ${this.#pos})`);
    }
    this.#pos++;
  }

  #close(): void {
    this.#pos++;
    this.#depth--;
  }

  #expect(b: number): void {
    if (this.#next() !== b) throw this.#error();
    this.#pos++;
  }

  /** The next byte after white space (the position moved to it), or undefined at the end. */
  #next(): number | undefined {
    const bytes = this.bytes;
    let i = this.#pos;
    while (i < bytes.length) {
      const b = bytes[i];
      if (b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09) break;
      i++;
    }
    this.#pos = i;
    return bytes[i];
  }

  /** The error for a byte the grammar does not allow at `at`, with a short escaped excerpt from there. */
  #error(at = this.#pos): FormatError {
    const n = this.bytes.length;
    if (at >= n) {
      return new FormatError(`${this.what} is not valid JSON (it ends too soon, after ${n} bytes)`);
    }
    const end = Math.min(n, at + SNIPPET);
    const excerpt = `"${escapeBytes(this.bytes.subarray(at, end))}"${end < n ? "..." : ""}`;
    return new FormatError(`${this.what} is not valid JSON (at byte ${at}: ${excerpt})`);
  }
}

const LITERALS: [number[], boolean | null][] = [
  [[0x74, 0x72, 0x75, 0x65], true],
  [[0x66, 0x61, 0x6c, 0x73, 0x65], false],
  [[0x6e, 0x75, 0x6c, 0x6c], null],
];

function isDigit(b: number | undefined): boolean {
  return b !== undefined && b >= 0x30 && b <= 0x39;
}

function isHex(b: number | undefined): boolean {
  return b !== undefined && ((b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66));
}
