/**
 * A pull-style JSON reader over a document that arrives in pieces (the output
 * of a decompressor), for documents too large to hold whole and too
 * untrusted to hand to `JSON.parse` (a TOC of 150 MiB makes an object graph
 * several times that). The caller walks the structure it expects and keeps
 * only what it needs; every string is bounded, nesting is bounded, and a
 * syntax error names the byte it is at.
 *
 * @module
 */
import { FormatError } from "../errors.ts";

const utf8 = new TextDecoder("utf-8", { fatal: true });
/** Deepest nesting {@link JsonReader.skip} walks through. */
const MAX_DEPTH = 32;
const WHITESPACE = new Set([0x20, 0x09, 0x0a, 0x0d]);

/** Reads JSON values one by one from `pieces`. */
export class JsonReader {
  #pieces: Iterator<Uint8Array>;
  #piece: Uint8Array = new Uint8Array(0);
  #at = 0;
  /** Bytes consumed before the current piece. */
  #base = 0;
  #buf = new Uint8Array(256);

  /** `what` names the document in errors. */
  constructor(pieces: Iterable<Uint8Array>, readonly what: string) {
    this.#pieces = pieces[Symbol.iterator]();
  }

  /** Where the reader is, in bytes from the document's start. */
  get offset(): number {
    return this.#base + this.#at;
  }

  /** Fails at the current byte. */
  fail(detail: string): never {
    throw new FormatError(`${this.what}: ${detail} at byte ${this.offset}`);
  }

  /** The next byte that is not whitespace, not consumed (-1 at the end). */
  peek(): number {
    for (;;) {
      const c = this.#byte();
      if (c < 0 || !WHITESPACE.has(c)) return c;
      this.#at++;
    }
  }

  /** Consumes the next non-whitespace byte, which must be `c`. */
  expect(c: number): void {
    if (this.peek() !== c) this.fail(`expected '${String.fromCharCode(c)}'`);
    this.#at++;
  }

  /** True (and consumed) when the next non-whitespace byte is `c`. */
  take(c: number): boolean {
    if (this.peek() !== c) return false;
    this.#at++;
    return true;
  }

  /**
   * Walks an object: calls `member` with each key (the reader then at its
   * value, which `member` must read or skip). Keys may not repeat.
   */
  object(member: (key: string) => void, maxKeyBytes = 256): void {
    this.expect(0x7b);
    if (this.take(0x7d)) return;
    const seen = new Set<string>();
    do {
      const key = this.string(maxKeyBytes);
      if (seen.has(key)) this.fail(`key ${JSON.stringify(key)} appears twice`);
      seen.add(key);
      this.expect(0x3a);
      member(key);
    } while (this.take(0x2c));
    this.expect(0x7d);
  }

  /** Walks an array: calls `item` with the reader at each element. */
  array(item: () => void): void {
    this.expect(0x5b);
    if (this.take(0x5d)) return;
    do item(); while (this.take(0x2c));
    this.expect(0x5d);
  }

  /** True (and consumed) when the next value is `null`. */
  null(): boolean {
    if (this.peek() !== 0x6e) return false;
    this.#literal("null");
    return true;
  }

  /** A string of at most `maxBytes` bytes (UTF-8, escapes decoded). */
  string(maxBytes: number): string {
    this.expect(0x22);
    let n = 0;
    const push = (b: number) => {
      if (n >= maxBytes) this.fail(`string longer than ${maxBytes} bytes`);
      if (n === this.#buf.length) {
        const bigger = new Uint8Array(Math.min(maxBytes, this.#buf.length * 2));
        bigger.set(this.#buf);
        this.#buf = bigger;
      }
      this.#buf[n++] = b;
    };
    for (;;) {
      const c = this.#next();
      if (c === 0x22) break;
      if (c < 0x20) this.fail(c < 0 ? "unterminated string" : "control character in a string");
      if (c !== 0x5c) {
        push(c);
        continue;
      }
      const e = this.#next();
      const simple = ESCAPES[e];
      if (simple !== undefined) {
        push(simple);
        continue;
      }
      if (e !== 0x75) this.fail("bad escape in a string");
      let cp = this.#hex4();
      if (cp >= 0xd800 && cp <= 0xdbff && this.#byte() === 0x5c) {
        this.#at++;
        if (this.#next() !== 0x75) this.fail("bad escape in a string");
        const low = this.#hex4();
        cp = low >= 0xdc00 && low <= 0xdfff ? 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00) : 0xfffd;
      } else if (cp >= 0xd800 && cp <= 0xdfff) {
        cp = 0xfffd; // a lone surrogate, as Go decodes it
      }
      for (const b of encodeCodePoint(cp)) push(b);
    }
    try {
      return utf8.decode(this.#buf.subarray(0, n));
    } catch {
      return this.fail("string is not valid UTF-8");
    }
  }

  /** An integer (JSON number syntax, no fraction or exponent), a safe integer. */
  integer(): number {
    const text = this.#numberText();
    if (!/^-?(0|[1-9][0-9]*)$/.test(text)) this.fail(`expected an integer, got ${JSON.stringify(text)}`);
    const v = Number(text);
    if (!Number.isSafeInteger(v)) this.fail(`integer ${text} is out of range`);
    return v;
  }

  /** Skips one value of any kind. */
  skip(depth = 0): void {
    if (depth > MAX_DEPTH) this.fail(`nested deeper than ${MAX_DEPTH}`);
    const c = this.peek();
    if (c === 0x7b) this.object(() => this.skip(depth + 1), 1 << 20);
    else if (c === 0x5b) this.array(() => this.skip(depth + 1));
    else if (c === 0x22) this.#skipString();
    else if (c === 0x74) this.#literal("true");
    else if (c === 0x66) this.#literal("false");
    else if (c === 0x6e) this.#literal("null");
    else this.#number();
  }

  /** Fails unless only whitespace is left. */
  end(): void {
    if (this.peek() >= 0) this.fail("data after the document");
  }

  #number(): void {
    const text = this.#numberText();
    if (!/^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$/.test(text)) this.fail("expected a value");
  }

  /** The characters a number may be made of, up to 64 of them. */
  #numberText(): string {
    this.peek();
    let text = "";
    for (;;) {
      const c = this.#byte();
      if (!((c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2b || c === 0x2e || c === 0x65 || c === 0x45)) break;
      if (text.length >= 64) this.fail("number too long");
      text += String.fromCharCode(c);
      this.#at++;
    }
    return text;
  }

  /** Passes over a string without keeping it (escapes are only stepped over). */
  #skipString(): void {
    this.expect(0x22);
    for (;;) {
      const c = this.#next();
      if (c === 0x22) return;
      if (c < 0x20) this.fail(c < 0 ? "unterminated string" : "control character in a string");
      if (c === 0x5c && this.#next() < 0) this.fail("unterminated string");
    }
  }

  #literal(word: string): void {
    this.peek();
    for (let i = 0; i < word.length; i++) {
      if (this.#next() !== word.charCodeAt(i)) this.fail(`expected ${word}`);
    }
  }

  #hex4(): number {
    let v = 0;
    for (let i = 0; i < 4; i++) {
      const c = this.#next();
      const d = c >= 0x30 && c <= 0x39
        ? c - 0x30
        : c >= 0x61 && c <= 0x66
        ? c - 0x57
        : c >= 0x41 && c <= 0x46
        ? c - 0x37
        : -1;
      if (d < 0) this.fail("bad \\u escape");
      v = v * 16 + d;
    }
    return v;
  }

  /** The current byte, not consumed (-1 at the end). */
  #byte(): number {
    while (this.#at >= this.#piece.length) {
      const r = this.#pieces.next();
      if (r.done) return -1;
      this.#base += this.#piece.length;
      this.#piece = r.value;
      this.#at = 0;
    }
    return this.#piece[this.#at];
  }

  #next(): number {
    const c = this.#byte();
    if (c >= 0) this.#at++;
    return c;
  }
}

/** The one-character escapes of JSON, by the character after the backslash. */
const ESCAPES: Record<number, number> = {
  0x22: 0x22,
  0x5c: 0x5c,
  0x2f: 0x2f,
  0x62: 0x08,
  0x66: 0x0c,
  0x6e: 0x0a,
  0x72: 0x0d,
  0x74: 0x09,
};

function encodeCodePoint(cp: number): number[] {
  if (cp < 0x80) return [cp];
  if (cp < 0x800) return [0xc0 | (cp >> 6), 0x80 | (cp & 63)];
  if (cp < 0x10000) return [0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 63), 0x80 | (cp & 63)];
  return [0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 63), 0x80 | ((cp >> 6) & 63), 0x80 | (cp & 63)];
}
