/**
 * A streaming tar parser that accounts for every byte: header groups, entry
 * content, padding and the end-of-archive trailer each reach the sink exactly
 * as they were in the stream, so a consumer can store them and later rebuild
 * the archive byte for byte.
 *
 * @module
 */
import { FormatError } from "../errors.ts";
import { padded, type TarEntry } from "./header.ts";
import { type HeaderExtensions, HeaderGroupReader } from "./header_group.ts";

/** Receives the parts of a tar stream in order. Chunks are views: copy to keep them. */
export interface TarSink {
  /** A new entry: its metadata, its exact header group bytes and what its extension headers said. */
  entry(entry: TarEntry, headerGroup: Uint8Array, extensions: HeaderExtensions): void | Promise<void>;
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
  Content,
  Padding,
  Trailer,
}

/**
 * Parses a tar stream pushed in chunks of any size. Header groups are read by a
 * {@link HeaderGroupReader}, with the same rules as everywhere else; every step
 * consumes at least one byte, so no input can make it stall or go backwards.
 */
export class TarSplitter {
  #sink: TarSink;
  #state = State.Header;
  #groups = new HeaderGroupReader();
  /** Bytes still wanted in the content and padding states. */
  #want = 0;
  /** Offset in the stream, for error messages. */
  #offset = 0;
  #entryOffset = 0;
  #entrySize = 0;

  constructor(sink: TarSink) {
    this.#sink = sink;
    this.#groups.begin(0);
  }

  /** Feeds the next chunk of the stream. */
  async write(chunk: Uint8Array): Promise<void> {
    let pos = 0;
    while (pos < chunk.length) {
      const want = this.#state === State.Header ? this.#groups.want : this.#want;
      const take = Math.min(want, chunk.length - pos);
      if (!(take > 0)) throw new FormatError(`tar stream cannot advance at byte ${this.#offset} (corrupt sizes)`);
      const piece = chunk.subarray(pos, pos + take);
      pos += take;
      this.#offset += take;
      switch (this.#state) {
        case State.Header: {
          const step = this.#groups.push(piece);
          if (step.type === "entry") await this.#entry(step.entry, step.group, step.extensions);
          else if (step.type === "end") {
            this.#state = State.Trailer;
            this.#want = Infinity;
            await this.#sink.trailer(step.bytes);
          }
          break;
        }
        case State.Content:
          this.#want -= take;
          await this.#sink.content(piece);
          if (this.#want === 0) await this.#endContent();
          break;
        case State.Padding:
          this.#want -= take;
          await this.#sink.padding(piece);
          if (this.#want === 0) this.#startHeader();
          break;
        case State.Trailer:
          await this.#sink.trailer(piece);
          break;
      }
    }
  }

  /** Signals the end of the stream; a stream cut inside an entry is an error. */
  close(): void {
    if (this.#state === State.Trailer) return;
    if (this.#state === State.Header && this.#groups.length === 0) return;
    throw new FormatError(
      `tar stream ends in the middle of an entry (at byte ${this.#offset}, entry starting at ${this.#entryOffset})`,
    );
  }

  #startHeader(): void {
    this.#state = State.Header;
    this.#entryOffset = this.#offset;
    this.#groups.begin(this.#offset);
  }

  async #entry(entry: TarEntry, group: Uint8Array, extensions: HeaderExtensions): Promise<void> {
    if (!Number.isSafeInteger(entry.size) || entry.size < 0) {
      throw new FormatError(`tar entry at byte ${this.#entryOffset}: invalid size ${entry.size}`);
    }
    await this.#sink.entry(entry, group, extensions);
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
