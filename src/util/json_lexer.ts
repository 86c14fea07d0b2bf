/**
 * The tokens of a JSON document in UTF-8, whole or in pieces as they come (out
 * of a decompressor): white space, strings, numbers and the words true, false
 * and null, each checked against the JSON grammar (RFC 8259) as JSON.parse
 * checks it; and the error for a byte the grammar does not allow, naming the
 * document and the byte, with at most 24 bytes of the input, escaped. One
 * array is read in place, with no copy and no cost per byte for being a single
 * piece. The lexer of `JsonReader` (util/json_reader.ts), which checks the
 * structure.
 *
 * @module
 */
import { FormatError } from "../errors.ts";
import { escapeBytes } from "./text.ts";

/** Bytes of the input an error shows: enough to recognise it, too few to leak a file. */
const SNIPPET = 24;
/** Longest number read as a value, in characters (a skipped one may be of any length). */
const MAX_NUMBER = 64;
/** The most bytes of JSON text one byte of a string takes (`\u0041`): a string past 6n bytes decodes past n. */
const MAX_ESCAPE_RATIO = 6;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const EMPTY = new Uint8Array(0);
const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Reads the tokens of one document; `what` names it in errors. */
export class JsonLexer {
  /** The pieces still to come (undefined once they are all taken, or for a single array). */
  #pieces: Iterator<Uint8Array> | undefined;
  #piece: Uint8Array;
  #at = 0;
  /** Bytes of the pieces before the current one. */
  #base = 0;
  /** Whether the string last scanned has escapes. */
  #escaped = false;
  /** A string's bytes, when it spans pieces (#kept of them). */
  #buf = new Uint8Array(256);
  #kept = 0;
  /** Of the number being scanned: its characters in the pieces before, and where it starts in the current one. */
  #numberHead = "";
  #numberFrom = 0;
  #integral = false;

  constructor(input: Uint8Array | Iterable<Uint8Array>, readonly what: string) {
    if (input instanceof Uint8Array) this.#piece = input;
    else {
      this.#piece = EMPTY;
      this.#pieces = input[Symbol.iterator]();
    }
  }

  /** The offset of the next byte to read, from the document's start. */
  get offset(): number {
    return this.#base + this.#at;
  }

  /** Moves past the current byte (which `next` returned). */
  step(): void {
    this.#at++;
  }

  /**
   * Reads a string from its opening quote (the current byte): its text, or
   * undefined (having checked and passed it) when it is longer than
   * `maxBytes` bytes of UTF-8 once its escapes are decoded.
   */
  string(maxBytes: number): string | undefined {
    const start = this.offset;
    this.#at++;
    const from = this.#scanString(maxBytes);
    if (from === OVER) return undefined;
    let text: string;
    try {
      text = from === SPANS ? utf8.decode(this.#buf.subarray(0, this.#kept)) : decode(this.#piece, from, this.#at - 1);
    } catch {
      throw new FormatError(`${this.what} is not valid UTF-8 (a string at byte ${start})`);
    }
    if (!this.#escaped) return text;
    // The escapes are checked: JSON.parse decodes them (and pairs surrogates) as it would in the whole.
    const decoded = (JSON.parse(`"${text}"`) as string).toWellFormed();
    return utf8Length(decoded) > maxBytes ? undefined : decoded;
  }

  /** Passes over a string from its opening quote (the current byte), checking it but for its UTF-8. */
  skipString(): void {
    this.#at++;
    this.#scanString(0);
  }

  /**
   * Reads a number from its first byte (a `-` or digit, the current byte):
   * its value when `keep` (refusing more than 64 characters), else 0.
   */
  number(keep: boolean): number {
    const start = this.offset;
    this.#numberHead = "";
    this.#numberFrom = this.#at;
    let b = this.#byte();
    const negative = b === 0x2d;
    if (negative) b = this.#take();
    let v = 0;
    let digits = 0;
    if (b === 0x30) b = this.#take();
    else {
      if (!isDigit(b)) throw this.error();
      for (; isDigit(b); b = this.#take()) {
        v = v * 10 + b - 0x30;
        digits++;
      }
    }
    this.#integral = true;
    if (b === 0x2e) {
      this.#integral = false;
      b = this.#digits(this.#take());
    }
    if (b === 0x65 || b === 0x45) {
      this.#integral = false;
      b = this.#take();
      if (b === 0x2b || b === 0x2d) b = this.#take();
      this.#digits(b);
    }
    if (!keep) return 0;
    if (this.offset - start > MAX_NUMBER) {
      throw new FormatError(`${this.what} has a number longer than ${MAX_NUMBER} characters (at byte ${start})`);
    }
    // Up to 15 digits, the digits' value is exact; past them, or with a fraction or exponent, Number rounds as JSON.parse.
    if (this.#integral && digits <= 15) return negative ? -v : v;
    return Number(this.numberText());
  }

  /** Whether the number last read has neither fraction nor exponent. */
  get integral(): boolean {
    return this.#integral;
  }

  /** The text of the number last read (when it is at most 64 characters). */
  numberText(): string {
    return this.#numberHead + latin1(this.#piece, this.#numberFrom, this.#at);
  }

  /** Passes over the digits from `b` on, at least one; returns the byte after them. */
  #digits(b: number): number {
    if (!isDigit(b)) throw this.error();
    while (isDigit(b)) b = this.#take();
    return b;
  }

  /** Moves past the current byte of a number; returns the next one (-1 at the end). */
  #take(): number {
    if (++this.#at < this.#piece.length) return this.#piece[this.#at];
    // The number goes on in the next piece: its part in this one is kept (while it may be short enough).
    if (this.#numberHead.length <= MAX_NUMBER) this.#numberHead += latin1(this.#piece, this.#numberFrom, this.#at);
    const more = this.#more();
    this.#numberFrom = this.#at;
    return more ? this.#piece[this.#at] : -1;
  }

  /** Reads `true`, `false` or `null` from its first byte (the current byte). */
  word(): boolean | null {
    const b = this.#piece[this.#at];
    const word = b === 0x74 ? TRUE : b === 0x66 ? FALSE : b === 0x6e ? NULL : undefined;
    if (word === undefined) throw this.error();
    for (let k = 0; k < word.length; k++) {
      if (this.#byte() !== word[k]) throw this.error();
      this.#at++;
    }
    return b === 0x74 ? true : b === 0x66 ? false : null;
  }

  /**
   * Checks a string from the byte after its opening quote to its closing one
   * (the lexer then after it). Returns where its bytes (escapes as they are)
   * start in the current piece (they end before the closing quote); SPANS when
   * they are in #buf (#kept of them); OVER when they are certainly more than
   * `maxBytes` once decoded. Sets #escaped.
   */
  #scanString(maxBytes: number): number {
    let escape = 0; // 0: plain; -1: after a backslash; k > 0: hex digits of a \u escape still to come
    let escaped = false;
    let raw = 0; // bytes of the string so far
    let over = false;
    let spans = false; // whether it spans pieces (its bytes then copied to #buf, while not over)
    for (;;) {
      const p = this.#piece;
      const from = this.#at;
      let i = from;
      let closed = false;
      for (; i < p.length; i++) {
        const b = p[i];
        if (escape === 0) {
          if (b >= 0x20 && b !== QUOTE && b !== BACKSLASH) continue;
          if (b === QUOTE) {
            closed = true;
            break;
          }
          if (b !== BACKSLASH) return this.#failAt(i);
          escape = -1;
          escaped = true;
        } else if (escape < 0) {
          if (b === 0x75) escape = 4;
          else if (SIMPLE_ESCAPES.includes(b)) escape = 0;
          else return this.#failAt(i);
        } else {
          if (!isHex(b)) return this.#failAt(i);
          escape--;
        }
      }
      raw += i - from;
      // Without escapes its bytes are its length; with them, at least a sixth of it.
      over ||= raw > (escaped ? MAX_ESCAPE_RATIO * maxBytes : maxBytes);
      if (!over && (spans || !closed)) this.#keep(p.subarray(from, i), spans ? this.#kept : 0);
      if (closed) {
        this.#at = i + 1;
        this.#escaped = escaped;
        return over ? OVER : spans ? SPANS : from;
      }
      spans = true;
      this.#at = i;
      if (!this.#more()) throw this.error();
    }
  }

  /** Puts `bytes` in #buf after its first `n`, #kept then counting them. */
  #keep(bytes: Uint8Array, n: number): void {
    if (n + bytes.length > this.#buf.length) {
      const bigger = new Uint8Array(Math.max(this.#buf.length * 2, n + bytes.length));
      bigger.set(this.#buf.subarray(0, n));
      this.#buf = bigger;
    }
    this.#buf.set(bytes, n);
    this.#kept = n + bytes.length;
  }

  /** The next byte after white space (the lexer moved to it), or -1 at the end. */
  next(): number {
    for (;;) {
      const p = this.#piece;
      let i = this.#at;
      while (i < p.length) {
        const b = p[i];
        if (b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09) {
          this.#at = i;
          return b;
        }
        i++;
      }
      this.#at = i;
      if (!this.#more()) return -1;
    }
  }

  /** The next byte, or -1 at the end. */
  #byte(): number {
    return this.#at < this.#piece.length || this.#more() ? this.#piece[this.#at] : -1;
  }

  /** Moves to the next piece that is not empty, once the current one is read; false at the end. */
  #more(): boolean {
    for (;;) {
      const next = this.#pieces?.next();
      if (next === undefined || next.done) {
        this.#pieces = undefined;
        return false;
      }
      if (next.value.length === 0) continue;
      this.#base += this.#piece.length;
      this.#piece = next.value;
      this.#at = 0;
      return true;
    }
  }

  #failAt(i: number): never {
    this.#at = i;
    throw this.error();
  }

  /** The error for a byte the grammar does not allow where the lexer is, with a short escaped excerpt from there. */
  error(): FormatError {
    const at = this.offset;
    const shown = new Uint8Array(SNIPPET + 1);
    let n = 0;
    try {
      for (let p = this.#piece, i = this.#at; n <= SNIPPET;) {
        if (i < p.length) shown[n++] = p[i++];
        else if (this.#more()) [p, i] = [this.#piece, 0];
        else break;
      }
    } catch { /* the pieces failing past the error: show what came */ }
    if (n === 0) return new FormatError(`${this.what} is not valid JSON (it ends too soon, after ${at} bytes)`);
    return new FormatError(`${this.what} is not valid JSON (at byte ${at}: ${excerpt(shown.subarray(0, n))})`);
  }
}

/** `bytes` for an error: at most 24 of them, escaped, in quotes. */
export function excerpt(bytes: Uint8Array): string {
  return `"${escapeBytes(bytes.subarray(0, SNIPPET))}"${bytes.length > SNIPPET ? "..." : ""}`;
}

const TRUE = [0x74, 0x72, 0x75, 0x65];
const FALSE = [0x66, 0x61, 0x6c, 0x73, 0x65];
const NULL = [0x6e, 0x75, 0x6c, 0x6c];
/** The characters after a backslash that make an escape of their own: " \ / b f n r t. */
const SIMPLE_ESCAPES = [0x22, 0x5c, 0x2f, 0x62, 0x66, 0x6e, 0x72, 0x74];

/** What #scanString returns for a string longer than asked for, and for one whose bytes are in #buf. */
const OVER = -1;
const SPANS = -2;

/** Bytes `[from, to)` of `p` as UTF-8 (a TypeError when they are not): short ASCII ones without a call to the decoder. */
function decode(p: Uint8Array, from: number, to: number): string {
  if (to - from > 64) return utf8.decode(p.subarray(from, to));
  let s = "";
  for (let k = from; k < to; k++) {
    const b = p[k];
    if (b >= 0x80) return utf8.decode(p.subarray(from, to));
    s += String.fromCharCode(b);
  }
  return s;
}

/** Bytes `[from, to)` of `p` (ASCII) as a string. */
function latin1(p: Uint8Array, from: number, to: number): string {
  let s = "";
  for (let k = from; k < to; k++) s += String.fromCharCode(p[k]);
  return s;
}

/** The length of `s` (well formed) in UTF-8. */
function utf8Length(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) i++; // a pair: 4 bytes for 2 units
    else if (c >= 0x800) n += 2;
    else if (c >= 0x80) n += 1;
  }
  return n;
}

function isDigit(b: number): boolean {
  return b >= 0x30 && b <= 0x39;
}

function isHex(b: number): boolean {
  return (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66);
}
