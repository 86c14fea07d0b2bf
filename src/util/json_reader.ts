/**
 * A pull-style JSON reader over UTF-8 bytes, whole or in pieces as they come
 * (out of a decompressor): the caller walks the shape it expects (objects,
 * arrays, the members it wants) and skips the rest without building it, so
 * reading a document costs its bytes plus what the caller keeps, whatever the
 * document holds (a million empty objects cost nothing), and a document too
 * large to hold whole is never held.
 *
 * Every byte, kept or skipped, is checked against the JSON grammar (RFC 8259)
 * as JSON.parse checks it (the tokens by util/json_lexer.ts); the strings
 * returned are checked to be UTF-8 (those passed over are not) and have their
 * escapes decoded as JSON.parse does, a lone surrogate as U+FFFD (as Go
 * decodes it). Bounded: nesting (without recursion: skipping keeps a stack of
 * brackets), the strings and member names returned, numbers read as values.
 * Errors are FormatErrors naming the document and the byte, with at most 24
 * bytes of the input, escaped.
 *
 * @module
 */
import { FormatError } from "../errors.ts";
import { excerpt, JsonLexer } from "./json_lexer.ts";

/** What the next value is. */
export type JsonKind = "object" | "array" | "string" | "number" | "literal";

/** Options of a {@link JsonReader}. */
export interface JsonReaderOptions {
  /** Deepest nesting of objects and arrays, the document's own counted (default 64). */
  maxDepth?: number;
  /** Refuse a member name that repeats in an object the caller walks with `object` (default: allowed). */
  uniqueKeys?: boolean;
}

/** Longest member name returned by default (longer ones come as undefined, so their values are skipped). */
const MAX_KEY = 256;
/** Characters of a number an error shows. */
const NUMBER_SHOWN = 24;

const QUOTE = 0x22;
const encoder = new TextEncoder();

/** Reads one JSON document; `what` names it in errors. */
export class JsonReader {
  readonly #lex: JsonLexer;
  #depth = 0;
  /** The closing bracket of each container `skip` is in. */
  readonly #closers: number[] = [];
  readonly #maxDepth: number;
  readonly #uniqueKeys: boolean;

  constructor(input: Uint8Array | Iterable<Uint8Array>, readonly what: string, options: JsonReaderOptions = {}) {
    this.#lex = new JsonLexer(input, what);
    this.#maxDepth = options.maxDepth ?? 64;
    this.#uniqueKeys = options.uniqueKeys ?? false;
  }

  /** Where the reader is: the offset of the next byte to read, from the document's start. */
  get offset(): number {
    return this.#lex.offset;
  }

  /** The kind of the next value (white space skipped). */
  peek(): JsonKind {
    const kind = KINDS[this.#lex.next()];
    if (kind === undefined) throw this.#lex.error();
    return kind;
  }

  /**
   * Reads an object: `member(name)` is called at each member's value and reads
   * or skips it (a value it leaves is skipped). Names longer than
   * `maxKeyBytes` come as undefined.
   */
  object(member: (name: string | undefined) => void, maxKeyBytes = MAX_KEY): void {
    const lex = this.#lex;
    this.#open(0x7b);
    if (lex.next() === 0x7d) return this.#close();
    const seen = this.#uniqueKeys ? new Set<string>() : undefined;
    for (;;) {
      if (lex.next() !== QUOTE) throw lex.error();
      const at = lex.offset;
      const name = lex.string(maxKeyBytes);
      if (seen !== undefined && name !== undefined) {
        if (seen.has(name)) {
          throw new FormatError(`${this.what} has the member ${excerpt(encoder.encode(name))} twice (at byte ${at})`);
        }
        seen.add(name);
      }
      if (lex.next() !== 0x3a) throw lex.error();
      lex.step();
      lex.next();
      const start = lex.offset;
      member(name);
      if (lex.offset === start) this.skip();
      const b = lex.next();
      if (b === 0x7d) return this.#close();
      if (b !== 0x2c) throw lex.error();
      lex.step();
    }
  }

  /** Reads an array: `item(index)` is called at each element and reads or skips it. */
  array(item: (index: number) => void): void {
    const lex = this.#lex;
    this.#open(0x5b);
    if (lex.next() === 0x5d) return this.#close();
    for (let index = 0;; index++) {
      lex.next();
      const start = lex.offset;
      item(index);
      if (lex.offset === start) this.skip();
      const b = lex.next();
      if (b === 0x5d) return this.#close();
      if (b !== 0x2c) throw lex.error();
      lex.step();
    }
  }

  /**
   * Reads a string, or returns undefined (having checked and passed it) when
   * it is longer than `maxBytes` bytes of UTF-8 once its escapes are decoded.
   */
  string(maxBytes = Infinity): string | undefined {
    if (this.#lex.next() !== QUOTE) throw this.#wrongKind("a string");
    return this.#lex.string(maxBytes);
  }

  /** Reads a number (of at most 64 characters). */
  number(): number {
    if (KINDS[this.#lex.next()] !== "number") throw this.#wrongKind("a number");
    return this.#lex.number(true);
  }

  /** Reads an integer: a number without fraction or exponent, within the safe integers. */
  integer(): number {
    const lex = this.#lex;
    if (KINDS[lex.next()] !== "number") throw this.#wrongKind("an integer");
    const v = lex.number(true);
    if (!lex.integral) this.fail(`expected an integer, not ${lex.numberText().slice(0, NUMBER_SHOWN)}`);
    if (!Number.isSafeInteger(v)) this.fail(`integer ${lex.numberText().slice(0, NUMBER_SHOWN)} is out of range`);
    return v;
  }

  /** Reads `true`, `false` or `null`. */
  literal(): boolean | null {
    if (KINDS[this.#lex.next()] !== "literal") throw this.#wrongKind("true, false or null");
    return this.#lex.word();
  }

  /** True (and read) when the next value is `null`. */
  null(): boolean {
    if (this.#lex.next() !== 0x6e) return false;
    this.#lex.word();
    return true;
  }

  /** Passes over one value of any kind, checking it and keeping nothing. */
  skip(): void {
    const lex = this.#lex;
    const closers = this.#closers;
    closers.length = 0;
    for (;;) {
      const b = lex.next();
      const kind = KINDS[b];
      if (kind === "object" || kind === "array") {
        this.#open(b);
        const closer = b + 2; // '}' or ']'
        if (lex.next() === closer) this.#close();
        else {
          closers.push(closer);
          if (kind === "object") this.#skipName();
          continue;
        }
      } else if (kind === "string") lex.skipString();
      else if (kind === "number") lex.number(false);
      else if (kind === "literal") lex.word();
      else throw lex.error();
      // After a value: close the containers that end here, and go on after a comma.
      for (;;) {
        if (closers.length === 0) return;
        const c = lex.next();
        const closer = closers[closers.length - 1];
        if (c === 0x2c) {
          lex.step();
          if (closer === 0x7d) this.#skipName();
          break;
        }
        if (c !== closer) throw lex.error();
        this.#close();
        closers.pop();
      }
    }
  }

  /** Checks that nothing but white space is left. */
  end(): void {
    if (this.#lex.next() >= 0) throw this.#lex.error();
  }

  /** Fails with `detail` (a FormatError naming the document and the current byte). */
  fail(detail: string): never {
    throw new FormatError(`${this.what}: ${detail} at byte ${this.offset}`);
  }

  /** Passes over a member name and its colon, in `skip`. */
  #skipName(): void {
    const lex = this.#lex;
    if (lex.next() !== QUOTE) throw lex.error();
    lex.skipString();
    if (lex.next() !== 0x3a) throw lex.error();
    lex.step();
  }

  #open(bracket: number): void {
    if (this.#lex.next() !== bracket) throw this.#wrongKind(bracket === 0x7b ? "an object" : "an array");
    if (++this.#depth > this.#maxDepth) {
      throw new FormatError(`${this.what} nests deeper than ${this.#maxDepth} levels (at byte ${this.offset})`);
    }
    this.#lex.step();
  }

  #close(): void {
    this.#lex.step();
    this.#depth--;
  }

  /** The error for a value of the wrong kind (or for no value at all). */
  #wrongKind(wanted: string): FormatError {
    const found = KINDS[this.#lex.next()];
    if (found === undefined) return this.#lex.error();
    return new FormatError(`${this.what} has ${ARTICLE[found]} where ${wanted} belongs (at byte ${this.offset})`);
  }
}

/** The kind of a value by its first byte. */
const KINDS: Record<number, JsonKind> = { 0x7b: "object", 0x5b: "array", 0x22: "string", 0x2d: "number" };
for (let d = 0x30; d <= 0x39; d++) KINDS[d] = "number";
for (const b of [0x74, 0x66, 0x6e]) KINDS[b] = "literal";

const ARTICLE: Record<JsonKind, string> = {
  object: "an object",
  array: "an array",
  string: "a string",
  number: "a number",
  literal: "true, false or null",
};
