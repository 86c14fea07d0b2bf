/**
 * A streaming tar parser that accounts for every byte: header groups, entry
 * content, padding and the end-of-archive trailer each reach the sink exactly
 * as they were in the stream, so a consumer can store them and later rebuild
 * the archive byte for byte.
 *
 * @module
 */
import { FormatError } from "../errors.ts";
import {
  BLOCK,
  isExtension,
  isZeroBlock,
  MAX_EXTENSION,
  padded,
  parseHeaderBlock,
  parseHeaderGroup,
  type TarEntry,
} from "./header.ts";

/** Receives the parts of a tar stream in order. Chunks are views: copy to keep them. */
export interface TarSink {
  /** A new entry: its metadata and its exact header group bytes. */
  entry(entry: TarEntry, headerGroup: Uint8Array): void | Promise<void>;
  /** A piece of the current entry's content. */
  content(chunk: Uint8Array): void | Promise<void>;
  /** The current entry's content is complete (also called for empty content). */
  endContent(): void | Promise<void>;
  /** Padding bytes after content, up to the next block boundary. */
  padding(bytes: Uint8Array): void | Promise<void>;
  /** Bytes from the first zero block to the end of the stream. */
  trailer(bytes: Uint8Array): void | Promise<void>;
}

const enum State {
  Header,
  Extension,
  Content,
  Padding,
  Trailer,
}

/** Parses a tar stream pushed in chunks of any size. */
export class TarSplitter {
  #sink: TarSink;
  #state = State.Header;
  /** Bytes of the header group gathered so far. */
  #group = new Uint8Array(4 * BLOCK);
  #groupLength = 0;
  /** Bytes still wanted in the current state (header block, extension data, content, padding). */
  #want = BLOCK;
  #globals = new Map<string, Uint8Array>();
  /** Offset in the stream, for error messages. */
  #offset = 0;
  #entryOffset = 0;
  #entrySize = 0;
  /** The group being read is a PAX global header. */
  #globalGroup = false;

  constructor(sink: TarSink) {
    this.#sink = sink;
  }

  /** Feeds the next chunk of the stream. */
  async write(chunk: Uint8Array): Promise<void> {
    let pos = 0;
    while (pos < chunk.length) {
      const take = Math.min(this.#want, chunk.length - pos);
      const piece = chunk.subarray(pos, pos + take);
      pos += take;
      this.#offset += take;
      this.#want -= take;
      switch (this.#state) {
        case State.Header:
        case State.Extension:
          this.#appendGroup(piece);
          if (this.#want === 0) await this.#groupStep();
          break;
        case State.Content:
          await this.#sink.content(piece);
          if (this.#want === 0) await this.#endContent();
          break;
        case State.Padding:
          await this.#sink.padding(piece);
          if (this.#want === 0) this.#startHeader();
          break;
        case State.Trailer:
          this.#want = Infinity;
          await this.#sink.trailer(piece);
          break;
      }
    }
  }

  /** Signals the end of the stream; a stream cut inside an entry is an error. */
  close(): void {
    if (this.#state === State.Trailer) return;
    if (this.#state === State.Header && this.#groupLength === 0) return;
    throw new FormatError(
      `tar stream ends in the middle of an entry (at byte ${this.#offset}, entry starting at ${this.#entryOffset})`,
    );
  }

  #appendGroup(piece: Uint8Array): void {
    const need = this.#groupLength + piece.length;
    if (need > this.#group.length) {
      const bigger = new Uint8Array(Math.max(need, this.#group.length * 2));
      bigger.set(this.#group.subarray(0, this.#groupLength));
      this.#group = bigger;
    }
    this.#group.set(piece, this.#groupLength);
    this.#groupLength = need;
  }

  #startHeader(): void {
    this.#state = State.Header;
    this.#want = BLOCK;
    this.#groupLength = 0;
    this.#entryOffset = this.#offset;
  }

  async #groupStep(): Promise<void> {
    if (this.#state === State.Extension) {
      // Extension data complete: a PAX global group ends here, others go on to their main header.
      return this.#globalGroup ? await this.#finishGroup() : this.#nextGroupBlock();
    }
    const block = this.#group.subarray(this.#groupLength - BLOCK, this.#groupLength);
    if (this.#groupLength === BLOCK && isZeroBlock(block)) {
      this.#state = State.Trailer;
      this.#want = Infinity;
      await this.#sink.trailer(block);
      return;
    }
    let h;
    try {
      h = parseHeaderBlock(block);
    } catch (e) {
      throw new FormatError(`${(e as Error).message} at byte ${this.#offset - BLOCK}`);
    }
    if (h.typeflag === "g" && this.#groupLength !== BLOCK) {
      throw new FormatError(`PAX global header inside another entry's headers at byte ${this.#offset - BLOCK}`);
    }
    if (!isExtension(h.typeflag) && h.typeflag !== "g") return await this.#finishGroup();
    if (h.size > MAX_EXTENSION) {
      throw new FormatError(`tar extension header of ${h.size} bytes at byte ${this.#offset - BLOCK} is too large`);
    }
    this.#globalGroup = h.typeflag === "g";
    this.#state = State.Extension;
    this.#want = padded(h.size);
    if (this.#want === 0) await this.#groupStep();
  }

  #nextGroupBlock(): void {
    this.#state = State.Header;
    this.#want = BLOCK;
  }

  async #finishGroup(): Promise<void> {
    this.#globalGroup = false;
    const group = this.#group.slice(0, this.#groupLength);
    let entry: TarEntry;
    try {
      entry = parseHeaderGroup(group, this.#globals);
    } catch (e) {
      if (e instanceof FormatError) {
        throw new FormatError(`${e.message} (tar entry at byte ${this.#entryOffset})`);
      }
      throw e;
    }
    await this.#sink.entry(entry, group);
    this.#entrySize = entry.size;
    this.#state = State.Content;
    this.#want = entry.size;
    if (entry.size === 0) await this.#endContent();
  }

  async #endContent(): Promise<void> {
    await this.#sink.endContent();
    const pad = padded(this.#entrySize) - this.#entrySize;
    if (pad === 0) return this.#startHeader();
    this.#state = State.Padding;
    this.#want = pad;
  }
}
