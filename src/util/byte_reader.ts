/**
 * Buffered reading of a binary file or stream: small reads (bytes, varints) served
 * from a buffer, large ones in chunks, with no need to hold the source whole.
 *
 * @module
 */
import { FormatError } from "../errors.ts";
import type { Reader } from "./fs.ts";
import { MAX_VARINT_BYTES } from "./varint.ts";

/** A source of byte chunks: `null` at the end. */
export type ChunkSource = () => Promise<Uint8Array | null>;

/** Adapts a ReadableStream to a {@link ChunkSource}. */
export function streamSource(stream: ReadableStream<Uint8Array>): { next: ChunkSource; cancel(): Promise<void> } {
  const reader = stream.getReader();
  return {
    next: async () => {
      const r = await reader.read();
      return r.done ? null : r.value;
    },
    cancel: () => reader.cancel().catch(() => {}),
  };
}

/** Adapts an open file to a {@link ChunkSource} reading `chunkSize` at a time. */
export function fileSource(file: Reader, chunkSize = 1 << 16): ChunkSource {
  return async () => {
    const buf = new Uint8Array(chunkSize);
    const n = await file.read(buf);
    return n === null ? null : buf.subarray(0, n);
  };
}

/** Reads typed values from a {@link ChunkSource}. `what` names the source in errors. */
export class ByteReader {
  #next: ChunkSource;
  #buf: Uint8Array = new Uint8Array(0);
  #pos = 0;
  #eof = false;
  /** Bytes consumed so far. */
  offset = 0;

  constructor(next: ChunkSource, readonly what: string) {
    this.#next = next;
  }

  /** Bytes buffered and not yet consumed. */
  get buffered(): number {
    return this.#buf.length - this.#pos;
  }

  /** Ensures at least `n` bytes are buffered; returns false at a clean end of input. */
  async fill(n: number): Promise<boolean> {
    while (this.buffered < n) {
      if (this.#eof) return false;
      const chunk = await this.#next();
      if (chunk === null) {
        this.#eof = true;
        return false;
      }
      if (this.buffered === 0) {
        this.#buf = chunk;
      } else {
        const merged = new Uint8Array(this.buffered + chunk.length);
        merged.set(this.#buf.subarray(this.#pos));
        merged.set(chunk, this.buffered);
        this.#buf = merged;
      }
      this.#pos = 0;
    }
    return true;
  }

  /** True when no byte is left. */
  async atEnd(): Promise<boolean> {
    return !(await this.fill(1));
  }

  /** Reads one byte. */
  async u8(): Promise<number> {
    if (this.#pos >= this.#buf.length && !(await this.fill(1))) this.#truncated();
    this.offset++;
    return this.#buf[this.#pos++];
  }

  /** Reads an unsigned LEB128 varint of at most 64 bits (values past 2^53 are refused). */
  async varint(): Promise<number> {
    const at = this.offset;
    let value = 0;
    let scale = 1;
    for (let i = 0; i < MAX_VARINT_BYTES; i++) {
      const b = this.#pos < this.#buf.length ? (this.offset++, this.#buf[this.#pos++]) : await this.u8();
      value += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) {
        if (!Number.isSafeInteger(value)) throw new FormatError(`${this.what}: the varint at byte ${at} is past 2^53`);
        return value;
      }
      scale *= 128;
    }
    throw new FormatError(`${this.what}: overlong varint (over ${MAX_VARINT_BYTES} bytes) at byte ${at}`);
  }

  /** Reads exactly `n` bytes into a new array (for bounded sizes only). */
  async bytes(n: number): Promise<Uint8Array> {
    if (!(await this.fill(n))) this.#truncated();
    const out = this.#buf.slice(this.#pos, this.#pos + n);
    this.#pos += n;
    this.offset += n;
    return out;
  }

  /**
   * Reads the next piece of at most `max` bytes (at least 1) without copying; the
   * view is valid until the next read.
   */
  async chunk(max: number): Promise<Uint8Array> {
    if (this.buffered === 0 && !(await this.fill(1))) this.#truncated();
    const n = Math.min(max, this.buffered);
    const out = this.#buf.subarray(this.#pos, this.#pos + n);
    this.#pos += n;
    this.offset += n;
    return out;
  }

  #truncated(): never {
    throw new FormatError(`${this.what}: truncated at byte ${this.offset}`);
  }
}
